"""Package names, tarball file names and dist-tag names, as npm has them."""

from __future__ import annotations

import pytest

from registry.domain.errors import PublishError
from registry.domain.names import (
    is_safe_filename,
    is_semver_range,
    parse_tarball_filename,
    split_scope,
    tarball_filename,
    validate_dist_tag,
    validate_package_name,
)


@pytest.mark.parametrize(
    "name",
    [
        "some-package",
        "example.com",
        "under_score",
        "123numeric",
        "@npm/thingy",
        "@jane/foo.js",
        "@acme/ui",
        "a" * 214,
        "@scope/" + "a" * 207,
    ],
)
def test_names_npm_accepts_for_new_packages_are_valid(name: str) -> None:
    validate_package_name(name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "greater than zero"),
        (".hidden", "period"),
        ("_private", "underscore"),
        (" leading", "spaces"),
        ("trailing ", "spaces"),
        ("node_modules", "not a valid package name"),
        ("favicon.ico", "not a valid package name"),
        ("FAVICON.ICO", "not a valid package name"),
        ("http", "core module"),
        ("fs", "core module"),
        ("a" * 215, "214"),
        ("Capital", "capital letters"),
        ("@Acme/ui", "capital letters"),
        ("crazy!", "special characters"),
        ("@scope/it's", "special characters"),
        ("a..b", "'..'"),
        ("@scope/../x", "'..'"),
        ("has space", "URL-friendly"),
        ("percent%20", "URL-friendly"),
        ("a/b", "URL-friendly"),
        ("@scope/a/b", "URL-friendly"),
        ("@scope", "URL-friendly"),
        ("@/pkg", "URL-friendly"),
        ("colon:name", "URL-friendly"),
        ("@scope/.dot", "period"),
        ("@.scope/pkg", "scope cannot start"),
        ("@_scope/pkg", "scope cannot start"),
        ("ünïcode", "URL-friendly"),
    ],
)
def test_names_npm_refuses_are_a_400_naming_the_reason(name: str, reason: str) -> None:
    with pytest.raises(PublishError) as caught:
        validate_package_name(name)
    assert caught.value.status == 400
    assert reason in caught.value.message


def test_a_name_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(PublishError):
        validate_package_name(None)  # type: ignore[arg-type]


def test_core_module_names_are_fine_inside_a_scope() -> None:
    validate_package_name("@acme/http")


def test_split_scope_separates_the_scope_with_its_at_sign() -> None:
    assert split_scope("@acme/ui") == ("@acme", "ui")
    assert split_scope("left-pad") == (None, "left-pad")


def test_tarball_filename_uses_the_unscoped_name() -> None:
    assert tarball_filename("@acme/ui", "1.0.0") == "ui-1.0.0.tgz"
    assert tarball_filename("left-pad", "1.3.0-beta.1") == "left-pad-1.3.0-beta.1.tgz"


def test_parse_tarball_filename_returns_the_version() -> None:
    assert parse_tarball_filename("@acme/ui", "ui-1.0.0.tgz") == "1.0.0"
    assert parse_tarball_filename("left-pad", "left-pad-2.0.0-rc.1.tgz") == "2.0.0-rc.1"
    assert parse_tarball_filename("left-pad", "left-pad-2.0.0+build.5.tgz") == "2.0.0+build.5"


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("foo", "foo-bar-1.0.0.tgz"),  # belongs to foo-bar
        ("foo", "bar-1.0.0.tgz"),
        ("foo", "foo-1.0.tgz"),
        ("foo", "foo-1.0.0.tar.gz"),
        ("foo", "foo-.tgz"),
        ("@acme/ui", "@acme/ui-1.0.0.tgz"),
        ("foo", "../foo-1.0.0.tgz"),
        ("foo", "foo-v1.0.0.tgz"),
    ],
)
def test_parse_tarball_filename_refuses_files_of_other_packages(name: str, filename: str) -> None:
    assert parse_tarball_filename(name, filename) is None


@pytest.mark.parametrize("filename", ["ui-1.0.0.tgz", "left-pad-1.3.0.tgz", "a-1.0.0+b.tgz"])
def test_plain_tgz_names_are_safe(filename: str) -> None:
    assert is_safe_filename(filename)


@pytest.mark.parametrize(
    "filename",
    ["", ".tgz", ".hidden.tgz", "a/b.tgz", "a\\b.tgz", "..tgz", "a..b.tgz", "a.tar.gz", "package.json",
     "a\x00.tgz"],
)
def test_unsafe_file_names_are_refused(filename: str) -> None:
    assert not is_safe_filename(filename)


@pytest.mark.parametrize(
    "text", ["1", "v1", "1.2", "1.2.3", "^2.0", "~1.2", "~> 1.2", "x", "*", "", ">=1 <2", ">= 1.0.0",
             "1.2.3 - 2", "1 || 2", "=1.0.0", "1.2.3-beta.1", "1.0.0+build", "1.x"],
)
def test_semver_ranges_are_recognised_as_npm_does(text: str) -> None:
    assert is_semver_range(text)


@pytest.mark.parametrize(
    "text", ["latest", "beta", "next", "v1-beta", "1.x-lts", "1.2.3.4", "canary-1", "legacy"]
)
def test_tag_names_are_not_semver_ranges(text: str) -> None:
    assert not is_semver_range(text)


@pytest.mark.parametrize("tag", ["latest", "beta", "next", "v1-lts", "release_candidate"])
def test_ordinary_dist_tags_are_valid(tag: str) -> None:
    validate_dist_tag(tag)


@pytest.mark.parametrize("tag", ["1", "v2", "^1.0.0", "1.x", "", "has space", "a/b", "*"])
def test_dist_tags_that_look_like_ranges_or_are_not_url_safe_are_refused(tag: str) -> None:
    with pytest.raises(PublishError) as caught:
        validate_dist_tag(tag)
    assert caught.value.status == 400
