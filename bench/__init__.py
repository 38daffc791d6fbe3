"""The side-by-side benchmark of tarhold and Verdaccio (`make bench`); see README.md."""
