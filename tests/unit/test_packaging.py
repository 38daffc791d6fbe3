"""The distribution declares every folder it ships, so an install prints no packaging warning.

setuptools warns ("Package '...' is absent from the `packages` configuration")
about a folder under a package that holds files but is not itself declared,
and a later setuptools drops it: `registry/http/static` (the web UI's CSS)
once went that way.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("registry", "uplinks", "storage")


def test_every_folder_of_the_packages_is_declared_with_its_files() -> None:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(settings["packages"])
    folders = {
        ".".join(path.relative_to(ROOT).parts)
        for top in TOP
        for path in [ROOT / top, *(ROOT / top).rglob("*")]
        if path.is_dir() and path.name != "__pycache__" and any(f.is_file() for f in path.iterdir())
    }
    assert declared == folders
    for folder in folders:
        data = [f for f in (ROOT / folder.replace(".", "/")).iterdir() if f.is_file() and f.suffix != ".py"]
        if data:
            assert settings["package-data"].get(folder), f"{folder} ships {data[0].name}: declare it in package-data"
