"""A start without a config: which registry is mirrored, and what the banner says (issue 20).

npm here is a stand-in script on a PATH of the test's own, so each case
says exactly what `npm config get registry` answers (or that there is no
npm at all); the fallbacks read a throwaway HOME.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

import pytest

from registry.config import parse_config
from registry.ops.banner import banner
from registry.ops.settings import Loaded, load_from_args
from registry.ops.upstream import (
    FROM_NPM,
    UPSTREAM_ENV,
    Upstream,
    find_upstream,
    npmrc_registry,
    points_here,
)
from storage.base import ConfigError

THIS_HOST = socket.gethostname().lower()  # this machine's name, as points_here compares it

UPSTREAM = "http://127.0.0.1:9/upstream/"
HERE = "127.0.0.1:4873"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with no npmrc, a PATH with no npm, and no npm or tarhold variables."""
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    for key in list(os.environ):
        if key.lower().startswith("npm_config_") or key in {UPSTREAM_ENV, "TARHOLD_CONFIG"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", str(home / "bin"))
    return home


def fake_npm(home: Path, answer: str) -> None:
    """An `npm` on PATH that prints `answer` for `npm config get registry`."""
    npm = home / "bin" / "npm"
    npm.write_text(f"#!/bin/sh\n[ \"$*\" = 'config get registry' ] && echo '{answer}'\n")
    npm.chmod(0o755)


def serve_args(*, upstream: str | None = None, config: str | None = None) -> argparse.Namespace:
    """What `tarhold serve` parses: a command that mirrors (it has --upstream)."""
    return argparse.Namespace(config=config, listen=HERE, storage=None, upstream=upstream)


def test_npms_own_answer_is_the_upstream(home: Path) -> None:
    fake_npm(home, UPSTREAM)
    (home / ".npmrc").write_text("registry=http://127.0.0.1:1/ignored-when-npm-answers/\n")
    assert find_upstream(None, os.environ) == Upstream(UPSTREAM, FROM_NPM)


def test_the_flag_then_the_variable_come_before_npm(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_npm(home, UPSTREAM)
    monkeypatch.setenv(UPSTREAM_ENV, "http://127.0.0.1:2/")
    assert find_upstream("http://127.0.0.1:3/", os.environ).url == "http://127.0.0.1:3/"
    assert find_upstream(None, os.environ).url == "http://127.0.0.1:2/"
    with pytest.raises(ConfigError, match="--upstream: 'registry.example' is not an http"):
        find_upstream("registry.example", os.environ)


def test_without_npm_the_variable_and_then_the_users_npmrc_are_read(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / ".npmrc").write_text('; comment\n@acme:registry=http://127.0.0.1:7/\nregistry = "${REG}"\n')
    monkeypatch.setenv("REG", UPSTREAM)
    assert find_upstream(None, os.environ) == Upstream(UPSTREAM, str(home / ".npmrc"))
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:8/")
    assert find_upstream(None, os.environ) == Upstream("http://127.0.0.1:8/", "$npm_config_registry")


def test_with_nothing_configured_there_is_no_upstream_and_the_reason(home: Path) -> None:
    found = find_upstream(None, os.environ)
    assert found.url is None and "npm is not installed" in found.refused


def test_npmrc_userconfig_and_last_line_wins(tmp_path: Path) -> None:
    npmrc = tmp_path / "npmrc"
    npmrc.write_text("registry=http://127.0.0.1:1/\n# registry=http://127.0.0.1:2/\nregistry='http://127.0.0.1:3/'\n")
    assert npmrc_registry(npmrc, {}) == "http://127.0.0.1:3/"
    assert npmrc_registry(tmp_path / "absent", {}) is None


@pytest.mark.parametrize(
    ("url", "listen", "public_url", "here"),
    [
        ("http://localhost:4873/", ("127.0.0.1", 4873), None, True),
        ("http://127.0.0.1:4873", ("localhost", 4873), None, True),
        ("http://127.0.0.1:4874/", ("127.0.0.1", 4873), None, False),
        ("http://[::1]:4873/", ("0.0.0.0", 4873), None, True),
        # This machine's own name: not a loopback name, so not a server listening on
        # loopback only; but one listening on every interface, yes.
        (f"http://{THIS_HOST}:4873/", ("127.0.0.1", 4873), None, False),
        (f"http://{THIS_HOST}:4873/", ("0.0.0.0", 4873), None, True),
        ("https://npm.corp.example/", ("0.0.0.0", 8080), "https://npm.corp.example", True),
        ("https://npm.corp.example:8443/", ("0.0.0.0", 8080), "https://npm.corp.example", False),
        ("https://tools.corp.example/npm/", ("0.0.0.0", 8080), "https://tools.corp.example/npm", True),
        ("https://tools.corp.example/artifactory/api/npm/", ("0.0.0.0", 8080), "https://tools.corp.example/npm", False),
    ],
)
def test_a_registry_that_is_this_server_is_recognised(
    url: str, listen: tuple[str, int], public_url: str | None, here: bool
) -> None:
    assert points_here(url, *listen, public_url) is here


def test_no_config_mirrors_npms_registry_with_rules_that_proxy_to_it(home: Path) -> None:
    fake_npm(home, UPSTREAM)
    loaded = load_from_args(serve_args())
    assert loaded.config.uplinks["upstream"].url == UPSTREAM.rstrip("/")
    assert {rule.proxy for rule in loaded.config.packages} == {("upstream",)}
    assert loaded.upstream == Upstream(UPSTREAM, FROM_NPM)


def test_npm_pointed_here_means_private_packages_only(home: Path) -> None:
    fake_npm(home, "http://localhost:4873/")
    loaded = load_from_args(serve_args())
    assert loaded.config.uplinks == {} and all(not rule.proxy for rule in loaded.config.packages)
    assert loaded.upstream is not None and "is this server itself" in loaded.upstream.refused
    with pytest.raises(ConfigError, match="--upstream: .* is this server itself"):
        load_from_args(serve_args(upstream="http://127.0.0.1:4873"))


def test_commands_that_do_not_mirror_never_ask_npm(home: Path) -> None:
    fake_npm(home, UPSTREAM)
    loaded = load_from_args(argparse.Namespace(config=None, storage=str(home / "data")))
    assert loaded.config.uplinks == {} and loaded.upstream is None


def test_a_config_naming_the_variable_gets_npms_registry_and_only_then(home: Path) -> None:
    fake_npm(home, UPSTREAM)
    named = home / "named.yaml"
    named.write_text(f"listen: {HERE}\nuplinks: {{up: {{url: {UPSTREAM_ENV}}}}}\n")
    loaded = load_from_args(serve_args(config=str(named)))
    assert loaded.config.uplinks["up"].url == UPSTREAM.rstrip("/") and loaded.upstream is not None
    own = home / "own.yaml"
    own.write_text(f"listen: {HERE}\nuplinks: {{up: {{url: 'http://127.0.0.1:5/'}}}}\n")
    assert load_from_args(serve_args(config=str(own))).upstream is None
    with pytest.raises(ConfigError, match="--upstream: .* names its own uplink URLs"):
        load_from_args(serve_args(config=str(own), upstream=UPSTREAM))
    fake_npm(home, f"http://{HERE}/")
    with pytest.raises(ConfigError, match="is this server itself"):
        load_from_args(serve_args(config=str(named)))


def loaded(raw: dict[str, object], upstream: Upstream | None = None, path: str | None = None) -> Loaded:
    return Loaded(parse_config({"listen": HERE, "storage": "/srv/data", **raw}), path, upstream)


def test_the_banner_says_url_mirror_data_clients_and_first_user() -> None:
    lines = banner(
        loaded({"uplinks": {"upstream": {"url": UPSTREAM}}}, Upstream(UPSTREAM, FROM_NPM)),
        f"http://{HERE}/", program=".venv/bin/tarhold",
    )
    text = "\n".join(lines)
    assert lines[0] == f"tarhold is serving at http://{HERE}/"
    assert lines[1].split() == ["mirrors", UPSTREAM, "(uplink", "upstream,", "npm's", "registry:", "`npm",
                                "config", "get", "registry`)"]
    assert lines[2].split(maxsplit=1) == ["data", "/srv/data (package files, and the SQLite database in it)"]
    for client in (f"npm config set registry http://{HERE}/", f"pnpm config set registry http://{HERE}/",
                   f"yarn config set registry http://{HERE}/", f"yarn config set npmRegistryServer http://{HERE}/",
                   """unsafeHttpWhitelist --json '["127.0.0.1"]'""", f'[install] registry = "http://{HERE}/"'):
        assert client in text, client
    assert (f"npm adduser --registry http://{HERE}/ (registration is open); an admin:"
            " .venv/bin/tarhold user add NAME --admin --storage /srv/data") in text


def test_the_banner_says_when_nothing_is_mirrored_and_registration_is_closed() -> None:
    refused = Upstream(None, FROM_NPM, refused=f"npm's registry http://{HERE}/ is this server itself")
    text = "\n".join(banner(loaded({"auth": {"max_users": -1}}, refused, "config.yaml"), f"http://{HERE}/"))
    assert f"nothing: private packages only (npm's registry http://{HERE}/ is this server itself);" in text
    assert f"to mirror a registry: --upstream URL, or {UPSTREAM_ENV}=URL" in text
    assert "registration is closed (auth.max_users: -1): tarhold user add NAME --admin -c config.yaml" in text
    assert "npm adduser" not in text


def test_the_banner_names_the_bucket_and_table_and_no_http_whitelist_for_https() -> None:
    store = {"aws-s3-storage": {"bucket": "pkgs", "keyPrefix": "npm/", "dynamoTableName": "reg"}}
    text = "\n".join(banner(loaded({"store": store}), "https://npm.corp.example/"))
    assert "s3://pkgs/npm/ (package files) + DynamoDB table reg" in text
    assert "unsafeHttpWhitelist" not in text
