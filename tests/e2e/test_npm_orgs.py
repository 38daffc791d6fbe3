"""Organizations and teams with the real npm CLI: `npm org`, `npm team` and `npm access`.

One embedded `tarhold serve` for the module; each test makes its own org with
`tarhold org create ORG --owner USER` (the CLI, on the server's own storage
while it runs), then npm does everything else, as the org's owner, an admin,
a developer and an outsider, and each command's exit code and the lines npm
prints (lib/commands/{org,team,access}.js) are checked.

npm's org, team and access commands take npm's global flags, so `Npm.argv`'s
`--userconfig`/`--cache` work for them (unlike `npm trust`'s).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.fixtures import (
    CLIENT_TIMEOUT,
    TARHOLD,
    NewNpm,
    Npm,
    Result,
    TarholdServer,
    embedded_tarhold,
    http_json,
    index_js,
    installed_file,
    path_of,
    unique_name,
    write_package,
)

pytestmark = pytest.mark.npm


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TarholdServer]:
    with embedded_tarhold(tmp_path_factory.mktemp("orgs")) as running:
        yield running


def tarhold_org(server: TarholdServer, workdir: Path, *args: str) -> str:
    """`tarhold org ARGS` on `server`'s storage (its config, `--storage` when embedded); stdout."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "org-cli.yaml"
    config.write_text(yaml.safe_dump(server.storage.config(server.port)))
    argv = [str(TARHOLD), "org", *args, "-c", str(config)]
    if server.storage.directory is not None:
        argv += ["--storage", str(server.storage.directory)]
    done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False)
    assert done.returncode == 0, f"$ {' '.join(argv)}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def create_org(server: TarholdServer, owner: Npm) -> str:
    """A new org owned by `owner`, made with `tarhold org create`; its name.

    A server learns of it within ORG_POLL seconds, or at once on an org change made through it:
    until then it takes `@ORG/*` for no org's, so each test changes the org before publishing."""
    org = unique_name("acme")
    out = tarhold_org(server, owner.home.parent / f"cli-{org}", "create", org, "--owner", str(owner.user))
    assert f"created organization {org} (@{org}/*) with {owner.user} as its owner" in out, out
    return org


def lines(result: Result) -> list[str]:
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def refused(result: Result, code: str, *needles: str) -> None:
    """npm failed with `code` (E403, E404) and printed each of `needles`."""
    assert result.returncode != 0 and f"code {code}" in result.stderr, result.explain()
    assert all(needle in result.stderr for needle in needles), result.explain()


def hidden(server: TarholdServer, npm: Npm, pkg: str) -> None:
    """`npm install PKG` fails as for a package that does not exist, and the registry's 404s for
    PKG (packument, collaborators, visibility) are word for word those of a name never
    published: nothing tells that PKG exists."""
    result = npm.fails("install", "--no-package-lock", pkg, cwd=npm.workdir(unique_name("hidden")))
    refused(result, "E404", f"'{pkg}@*' could not be found or you do not have permission to access it")
    missing = f"{pkg}-{unique_name('never')}"
    for path in ("{}", "-/package/{}/collaborators", "-/package/{}/visibility"):  # + npm access
        status, answer = http_json("GET", server.url + path.format(path_of(pkg)[1:]), token=npm.token)
        status_missing, answer_missing = http_json("GET", server.url + path.format(path_of(missing)[1:]),
                                                   token=npm.token)
        assert status == status_missing == 404, (path, status, answer, status_missing, answer_missing)
        assert json.dumps(answer) == json.dumps(answer_missing).replace(missing, pkg), (path, answer, answer_missing)


def publish_dir(npm: Npm, name: str, version: str) -> Path:
    return write_package(npm.workdir(f"{name.split('/')[-1]}-{version}"), name, version)


def test_owners_and_admins_manage_members_and_teams_with_npm_org_and_npm_team(
    server: TarholdServer, new_npm: NewNpm
) -> None:
    alice, bob, carol, eve = (new_npm(server, who) for who in ("alice", "bob", "carol", "eve"))
    org = create_org(server, alice)
    listed = tarhold_org(server, alice.home.parent / "cli-list", "list")
    (row,) = [line for line in listed.splitlines() if line.split()[:1] == [org]]
    assert alice.user in row and "developers" in row, listed

    added = alice.ok("org", "set", org, str(bob.user))  # the role defaults to developer
    assert lines(added) == [f"Added {bob.user} as developer to {org}. You now have 2 members in this org."]
    added = alice.ok("org", "set", org, str(carol.user), "admin")
    assert lines(added) == [f"Added {carol.user} as admin to {org}. You now have 3 members in this org."]
    assert lines(alice.ok("org", "ls", org)) == sorted(
        [f"{alice.user} - owner", f"{bob.user} - developer", f"{carol.user} - admin"]
    )
    assert lines(bob.ok("org", "ls", org, str(carol.user))) == [f"{carol.user} - admin"]  # members read
    refused(eve.fails("org", "ls", org), "E403", f"{eve.user} is not a member of the {org} organization")

    refused(bob.fails("team", "create", f"@{org}:web"), "E403",
            f"only owners and admins of {org} may change it; {bob.user} is a developer")
    assert lines(carol.ok("team", "create", f"@{org}:web")) == [f"+@{org}:web"]
    assert lines(carol.ok("team", "add", f"@{org}:web", str(bob.user))) == [f"{bob.user} added to @{org}:web"]
    assert lines(bob.ok("team", "ls", f"@{org}")) == [f"@{org} has 2 teams:", f"@{org}:developers", f"@{org}:web"]
    assert lines(bob.ok("team", "ls", f"@{org}:web")) == [f"@{org}:web has 1 user:", str(bob.user)]

    assert lines(alice.ok("team", "rm", f"@{org}:web", str(bob.user))) == [f"{bob.user} removed from @{org}:web"]
    assert lines(alice.ok("team", "destroy", f"@{org}:web")) == [f"-@{org}:web"]
    removed = alice.ok("org", "rm", org, str(carol.user))
    assert lines(removed) == [f"Successfully removed {carol.user} from {org}. You now have 2 members in this org."]
    # What is left, over HTTP: the developers team (every member joined it), and no web team.
    status, teams = http_json("GET", f"{server.url}-/org/{org}/team", token=alice.token)
    assert (status, teams) == (200, [f"{org}:developers"])
    status, members = http_json("GET", f"{server.url}-/team/{org}/developers/user", token=alice.token)
    assert (status, members) == (200, sorted([str(alice.user), str(bob.user)]))


def test_npm_access_grants_revokes_and_sets_the_visibility_of_org_packages(
    server: TarholdServer, new_npm: NewNpm
) -> None:
    alice, bob, eve = (new_npm(server, who) for who in ("alice", "bob", "eve"))
    org = create_org(server, alice)
    # Members and the team over HTTP: npm org/team are the other test's.
    for method, path, body in (
        ("PUT", f"-/org/{org}/user", {"user": bob.user, "role": "developer"}),
        ("PUT", f"-/org/{org}/team", {"name": "web"}),
        ("PUT", f"-/team/{org}/web/user", {"user": bob.user}),
    ):
        status, answer = http_json(method, server.url + path, body, token=alice.token)
        assert status in (200, 201), f"{method} {path}: {status} {answer}"
    pkg, tool = f"@{org}/pkg", f"@{org}/tool"

    alice.publish(publish_dir(alice, pkg, "1.0.0"))  # no --access: private
    bob.publish(publish_dir(bob, tool, "1.0.0"), "--access", "public")  # a developer may create one
    assert lines(alice.ok("access", "get", "status", pkg)) == [f"{pkg}: private"]
    hidden(server, eve, pkg)
    assert http_json("GET", server.url + path_of(tool).lstrip("/"))[0] == 200  # public to anyone
    # The developers team got read-write on each package a member created.
    assert lines(alice.ok("access", "list", "packages", org)) == [f"{pkg}: read-write", f"{tool}: read-write"]

    assert alice.ok("access", "grant", "read-only", f"{org}:developers", pkg).stdout == ""
    assert lines(bob.ok("access", "list", "packages", f"{org}:developers")) == [
        f"{pkg}: read-only", f"{tool}: read-write"
    ]
    alice.ok("access", "grant", "read-write", f"@{org}:web", pkg)
    bob.publish(publish_dir(bob, pkg, "1.0.1"))  # web's read-write
    assert lines(bob.ok("access", "list", "packages", f"{org}:web")) == [f"{pkg}: read-write"]
    assert lines(bob.ok("access", "list", "packages")) == [f"{pkg}: read-write", f"{tool}: read-write"]
    assert lines(alice.ok("access", "list", "collaborators", pkg)) == sorted(
        [f"{alice.user}: read-write", f"{bob.user}: read-write"]
    )

    alice.ok("access", "revoke", f"{org}:web", pkg)
    refused(bob.fails("publish", cwd=publish_dir(bob, pkg, "1.0.2")), "E403",
            f"{bob.user} may not change {pkg}: no team of {org} grants them read-write on it")

    assert lines(alice.ok("access", "set", "status=public", pkg)) == [f"{pkg}: public"]
    project = eve.install(pkg)
    assert installed_file(project, pkg) == index_js(pkg, "1.0.1")
    assert lines(alice.ok("access", "set", "status=private", pkg)) == [f"{pkg}: private"]
    hidden(server, eve, pkg)
    refused(eve.fails("access", "set", "status=public", pkg), "E404", pkg)

    alice.ok("access", "set", "mfa=automation", pkg)
    status, doc = http_json("GET", server.url + path_of(pkg).lstrip("/"), token=alice.token)
    assert status == 200 and sorted(doc["versions"]) == ["1.0.0", "1.0.1"], f"{status} {doc}"
