"""The real npm CLI against a real `tarhold serve`, on both storage backends.

One server per module and backend; every test works on packages and users
of its own (unique names). Users are registered over HTTP and npm gets their
token in a throwaway .npmrc; adduser/login themselves are test_npm_login.py's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fixtures import (
    CLIENT_TIMEOUT,
    PASSWORD,
    Npm,
    Result,
    TarholdServer,
    http_bytes,
    http_json,
    index_js,
    installed_file,
    unique_name,
    write_package,
)
from tests.e2e.terminal import run_on_tty

pytestmark = pytest.mark.npm

NpmAs = Callable[..., Npm]


def publish_new(npm: Npm, name: str, version: str = "1.0.0", *args: str, **manifest: Any) -> Path:
    """Write a package directory and `npm publish` it as this npm's user."""
    directory = npm.workdir(f"pkg-{name.replace('/', '-').lstrip('@')}-{version}")
    write_package(directory, name, version, **manifest)
    npm.publish(directory, *args)
    return directory


def versions_of(result: Result) -> list[str]:
    """`npm view NAME versions --json`: a list, or a bare string for one version."""
    value = result.json()
    return [value] if isinstance(value, str) else list(value)


def npm_error(result: Result, code: str) -> str:
    """npm's error output, which must carry `npm error code CODE`."""
    assert f"npm error code {code}" in result.stderr, result.explain()
    return result.stderr


def test_whoami_names_the_user_of_the_token(npm_as: NpmAs) -> None:
    alice = npm_as("alice")
    assert alice.ok("whoami").stdout.strip() == alice.user


def test_published_packages_install_with_their_files(npm_as: NpmAs) -> None:
    alice = npm_as("alice")
    plain = unique_name("e2e-plain")
    scoped = f"@e2e/{unique_name('scoped')}"
    publish_new(alice, plain, "1.0.0")
    publish_new(alice, plain, "1.1.0")
    publish_new(alice, scoped, "2.0.0", "--access", "public")

    anonymous = npm_as(None)
    assert anonymous.ok("view", plain, "version").stdout.strip() == "1.1.0"
    assert versions_of(anonymous.ok("view", plain, "versions", "--json")) == ["1.0.0", "1.1.0"]
    assert anonymous.ok("view", scoped, "version").stdout.strip() == "2.0.0"

    project = anonymous.install(f"{plain}@1.0.0", f"{scoped}@2.0.0")
    assert installed_file(project, plain) == index_js(plain, "1.0.0")
    assert installed_file(project, scoped) == index_js(scoped, "2.0.0")
    assert f"# {scoped}" in installed_file(project, scoped, "README.md")
    assert json.loads(installed_file(project, plain, "package.json"))["version"] == "1.0.0"


def test_scoped_package_publishes_public_through_publish_config(npm_as: NpmAs) -> None:
    alice = npm_as("alice")
    scoped = f"@e2e/{unique_name('config')}"
    publish_new(alice, scoped, "0.1.0", publishConfig={"access": "public"})
    assert alice.ok("view", scoped, "version").stdout.strip() == "0.1.0"


def test_dist_tags_add_list_and_remove(npm_as: NpmAs, tarhold: TarholdServer) -> None:
    alice = npm_as("alice")
    name = unique_name("e2e-tags")
    publish_new(alice, name, "1.0.0")
    publish_new(alice, name, "1.1.0")

    alice.ok("dist-tag", "add", f"{name}@1.0.0", "stable")
    listed = alice.ok("dist-tag", "ls", name).stdout.splitlines()
    assert sorted(listed) == ["latest: 1.1.0", "stable: 1.0.0"]
    assert tarhold.packument(name)["dist-tags"] == {"latest": "1.1.0", "stable": "1.0.0"}

    project = alice.install(f"{name}@stable")
    assert installed_file(project, name) == index_js(name, "1.0.0")

    alice.ok("dist-tag", "rm", name, "stable")
    assert alice.ok("dist-tag", "ls", name).stdout.splitlines() == ["latest: 1.1.0"]


def test_deprecate_shows_in_view_and_in_the_packument(npm_as: NpmAs, tarhold: TarholdServer) -> None:
    alice = npm_as("alice")
    name = unique_name("e2e-deprecated")
    publish_new(alice, name, "1.0.0")
    message = "use e2e-successor instead"

    alice.ok("deprecate", f"{name}@1.0.0", message)
    assert alice.ok("view", name, "deprecated").stdout.strip() == message
    assert tarhold.packument(name)["versions"]["1.0.0"]["deprecated"] == message

    alice.ok("deprecate", f"{name}@1.0.0", "")  # npm's way to lift a deprecation
    assert "deprecated" not in tarhold.packument(name)["versions"]["1.0.0"]


def test_unpublish_one_version_then_the_whole_package(npm_as: NpmAs, tarhold: TarholdServer) -> None:
    alice = npm_as("alice")
    name = unique_name("e2e-unpublish")
    publish_new(alice, name, "1.0.0")
    publish_new(alice, name, "1.0.1")

    alice.ok("unpublish", f"{name}@1.0.1", "--force")
    assert versions_of(alice.ok("view", name, "versions", "--json")) == ["1.0.0"]
    assert http_bytes(f"{tarhold.url}{name}/-/{name}-1.0.1.tgz")[0] == 404
    missing = alice.fails("install", "--no-package-lock", f"{name}@1.0.1", cwd=alice.workdir("p1"))
    npm_error(missing, "ETARGET")

    alice.ok("unpublish", name, "--force")
    npm_error(alice.fails("view", name, "version"), "E404")
    gone = alice.fails("install", "--no-package-lock", f"{name}@1.0.0", cwd=alice.workdir("p2"))
    npm_error(gone, "E404")
    assert http_json("GET", tarhold.url + name)[0] == 404
    assert http_bytes(f"{tarhold.url}{name}/-/{name}-1.0.0.tgz")[0] == 404


def test_owners_decide_who_may_publish(npm_as: NpmAs) -> None:
    alice, bob = npm_as("alice"), npm_as("bob")
    name = unique_name("e2e-owned")
    publish_new(alice, name, "1.0.0")

    v101 = write_package(bob.workdir("v101"), name, "1.0.1")
    refused = bob.fails("publish", cwd=v101)
    assert "not a maintainer" in npm_error(refused, "E403")

    assert alice.ok("owner", "add", bob.user, name).stdout.strip() == f"+ {bob.user} ({name})"
    owners = alice.ok("owner", "ls", name).stdout.splitlines()
    assert sorted(owners) == sorted(f"{u} <{u}@example.com>" for u in (alice.user, bob.user))

    bob.publish(v101)
    assert bob.ok("view", name, "version").stdout.strip() == "1.0.1"

    assert alice.ok("owner", "rm", bob.user, name).stdout.strip() == f"- {bob.user} ({name})"
    assert alice.ok("owner", "ls", name).stdout.splitlines() == [f"{alice.user} <{alice.user}@example.com>"]
    refused = bob.fails("publish", cwd=write_package(bob.workdir("v102"), name, "1.0.2"))
    npm_error(refused, "E403")


def test_tokens_are_created_listed_and_revoked(npm_as: NpmAs) -> None:
    alice = npm_as("alice")
    created = alice.ok("token", "create", "--password", PASSWORD, "--name", "ci", "--json").json()
    token = created["token"]
    assert created["readonly"] is False

    listed = alice.ok("token", "list", "--json").json()
    assert len(listed) == 2  # the one from registering, and the new one
    (record,) = [t for t in listed if token.startswith(t["token"])]
    assert "password" not in json.dumps(listed) and token not in json.dumps(listed)

    with_new_token = npm_as(None, token=token)
    assert with_new_token.ok("whoami").stdout.strip() == alice.user

    assert alice.ok("token", "revoke", record["key"]).stdout.strip() == "Removed 1 token"
    assert [t["key"] for t in alice.ok("token", "list", "--json").json()] == [
        t["key"] for t in listed if t["key"] != record["key"]
    ]
    npm_error(with_new_token.fails("whoami"), "E401")


def test_token_create_asks_for_the_password_on_a_terminal(npm_as: NpmAs) -> None:
    alice = npm_as("alice")
    code, output = asyncio.run(run_on_terminal(alice, ["token", "create"], "npm password:", PASSWORD))
    assert code == 0, output
    assert "Created token " in output
    token = output.split("Created token ", 1)[1].split()[0]
    assert npm_as(None, token=token).ok("whoami").stdout.strip() == alice.user


def test_search_finds_published_packages_by_keyword(npm_as: NpmAs) -> None:
    alice = npm_as("alice")
    keyword = unique_name("kw")
    name = unique_name("e2e-findme")
    publish_new(alice, name, "1.2.3", keywords=[keyword, "e2e"], description=f"findable {keyword}")
    publish_new(alice, unique_name("e2e-hidden"), "1.0.0", description="not this one")

    found = alice.ok("search", keyword, "--json").json()
    assert [(p["name"], p["version"]) for p in found] == [(name, "1.2.3")]


def test_publish_is_refused_without_credentials(npm_as: NpmAs) -> None:
    name = unique_name("e2e-anonymous")
    anonymous = npm_as(None)
    # npm itself refuses before it asks the registry: no token for it.
    directory = write_package(anonymous.workdir("pkg"), name, "1.0.0")
    npm_error(anonymous.fails("publish", cwd=directory), "ENEEDAUTH")

    # A token the registry does not know: the refusal is the server's, in its words.
    stranger = npm_as(None, token="not-a-token-this-registry-issued")
    refused = stranger.fails("publish", cwd=write_package(stranger.workdir("pkg"), name, "1.0.0"))
    assert "invalid, expired or revoked token" in npm_error(refused, "E401")
    assert http_json("GET", anonymous.registry + name)[0] == 404


def test_publish_over_an_existing_version_is_refused(npm_as: NpmAs) -> None:
    alice = npm_as("alice")
    name = unique_name("e2e-again")
    directory = publish_new(alice, name, "1.0.0")
    # --force skips npm's own check, so the registry is the one that says no.
    refused = alice.fails("publish", "--force", cwd=directory)
    assert "1.0.0" in npm_error(refused, "E403")


# -- a terminal for npm's prompts -------------------------------------------------


async def run_on_terminal(npm: Npm, args: list[str], prompt: str, answer: str) -> tuple[int, str]:
    """Run npm on a pseudo-terminal and type `answer` once `prompt` shows; bounded."""
    return await run_on_tty(npm.argv(*args), [(prompt, answer)], env=npm.env, cwd=npm.home, timeout=CLIENT_TIMEOUT)
