"""pnpm 11 and yarn 4 stage, approve and reject versions on a real `tarhold serve`.

The clients: pnpm 11.29.0 (`pnpm stage publish|list|approve|reject`, run
with the Node 24 tests/tools/install-verdaccio.sh installs, as pnpm 11 needs
node >= 22.13) and yarn 4.18.1 (`yarn npm publish --staged`, `yarn npm
stage list|approve|reject`), both from tests/tools/install-clients.sh.

One server for the module (embedded storage). Each client gets its own
maintainer, who turns two-factor auth on over HTTP (as `npm profile
enable-2fa` does) and computes the codes as an authenticator app would.
Staging needs no code; the staged version stays out of the packument until
`approve --otp` publishes it, with the staged bytes; a rejected one never
shows up and leaves the list empty. pnpm stages a new version of a package
that exists; yarn stages the first version of a new one.

Every client gets its HOME, caches and project in the test's temporary
directory, and talks to nothing but the local server: the only sockets
pnpm 11 and yarn 4 open in these commands are to 127.0.0.1:PORT (checked
with `strace -f -e trace=connect` when this test was written).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.client_projects import yarnrc
from tests.e2e.fixtures import (
    CLIENT_TIMEOUT,
    PASSWORD,
    ROOT,
    Result,
    TarholdServer,
    client_env,
    embedded_tarhold,
    http_bytes,
    http_json,
    path_of,
    run_client,
    unique_name,
    write_package,
)
from tests.e2e.test_npm_two_factor import Authenticator
from tests.http.packages import publish_body
from tests.support.verdaccio import NODE, VERDACCIO_DIR

pytestmark = pytest.mark.npm

NODE24 = VERDACCIO_DIR / NODE
PNPM11_JS = ROOT / ".cache" / "clients" / "pnpm11" / "node_modules" / "pnpm" / "bin" / "pnpm.mjs"
YARN4_JS = ROOT / ".cache" / "clients" / "yarn4" / "node_modules" / "@yarnpkg" / "cli-dist" / "bin" / "yarn.js"
PROFILE = "-/npm/v1/user"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# -- the server, a maintainer with 2FA on -------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TarholdServer]:
    with embedded_tarhold(tmp_path_factory.mktemp("stage-clients")) as started:
        yield started


def enable_2fa_over_http(server: TarholdServer, token: str) -> Authenticator:
    """What `npm profile enable-2fa auth-and-writes` sends: password, then the first code."""
    body = {"tfa": {"password": PASSWORD, "mode": "auth-and-writes"}}
    status, answer = http_json("POST", server.url + PROFILE, body, token=token)
    assert status == 200, f"POST /{PROFILE} (password): {status} {answer}"
    app = Authenticator(parse_qs(urlparse(answer["tfa"]).query)["secret"][0])
    status, answer = http_json("POST", server.url + PROFILE, {"tfa": [app.code()]}, token=token)
    assert status == 200 and len(answer["tfa"]) == 8, f"POST /{PROFILE} (first code): {status} {answer}"
    return app


def publish_over_http(server: TarholdServer, token: str, name: str, version: str) -> None:
    body = publish_body(name, version, base=server.url.rstrip("/"))
    status, answer = http_json("PUT", server.url + path_of(name).lstrip("/"), body, token=token)
    assert status == 201, f"PUT {name}@{version}: {status} {answer}"


def packument_status(server: TarholdServer, name: str) -> tuple[int, dict[str, Any]]:
    status, body = http_json("GET", server.url + path_of(name).lstrip("/"))
    return status, body if status == 200 else {}


def assert_published_as_staged(server: TarholdServer, name: str, version: str, shasum: str) -> None:
    """`version` is in the packument, `latest`, and its tarball holds the staged bytes."""
    status, doc = packument_status(server, name)
    assert status == 200 and version in doc["versions"], f"{name}: {status} {doc}"
    assert doc["dist-tags"]["latest"] == version, doc["dist-tags"]
    dist = doc["versions"][version]["dist"]
    assert dist["shasum"] == shasum, dist
    status, tarball = http_bytes(dist["tarball"])
    assert status == 200 and hashlib.sha1(tarball).hexdigest() == shasum


@dataclass
class Client:
    """One client's command line, environment and project, on one server."""

    argv: list[str]
    project: Path
    env: dict[str, str]
    server: TarholdServer

    def ok(self, *args: str) -> Result:
        result = run_client([*self.argv, *args], cwd=self.project, env=self.env, timeout=CLIENT_TIMEOUT)
        assert result.returncode == 0, f"{result.explain()}\n--- tarhold log (tail)\n{self.server.log()[-4000:]}"
        return result


# -- pnpm 11 --------------------------------------------------------------------------


def pnpm11() -> list[str]:
    """node 24 and pnpm 11; a skip saying how to get them when either is missing."""
    missing = [str(path) for path in (NODE24, PNPM11_JS) if not path.is_file()]
    if missing:
        pytest.skip(
            f"pnpm 11 needs node >= 22.13; missing {', '.join(missing)}: run"
            " `sh tests/tools/install-verdaccio.sh .cache/verdaccio` (node 24) and"
            " `sh tests/tools/install-clients.sh .cache/clients` (pnpm 11); `make test` installs both"
        )
    return [str(NODE24), str(PNPM11_JS)]


def test_pnpm_11_stages_a_version_that_approve_publishes_and_reject_discards(
    server: TarholdServer, tmp_path: Path
) -> None:
    argv = pnpm11()
    user = unique_name("pnpm-maint")
    token = server.add_user(user)
    name = unique_name("pnpm-staged")
    publish_over_http(server, token, name, "1.0.0")
    app = enable_2fa_over_http(server, token)

    project = write_package(tmp_path / "package", name, "1.1.0")
    # What pnpm reads for a registry and its token: the project's .npmrc.
    (project / ".npmrc").write_text(f"registry={server.url}\n{server.auth_key}:_authToken={token}\n")
    pnpm = Client(argv, project, client_env(tmp_path / "home"), server)

    summary = pnpm.ok("stage", "publish", "--json").json()[name]
    staged = summary["stageId"]
    assert UUID.match(staged) and summary["version"] == "1.1.0", summary
    listed = pnpm.ok("stage", "list", name, "--json").json()
    assert [(i["id"], i["packageName"], i["version"], i["actor"]) for i in listed] == [
        (staged, name, "1.1.0", user)
    ], listed
    assert set(packument_status(server, name)[1]["versions"]) == {"1.0.0"}

    approved = pnpm.ok("stage", "approve", staged, f"--otp={app.code()}")
    assert f"Staged package {staged} approved" in approved.stdout, approved.explain()
    assert_published_as_staged(server, name, "1.1.0", summary["shasum"])
    assert pnpm.ok("stage", "list", name, "--json").json() == []

    write_package(project, name, "1.2.0")
    rejected = pnpm.ok("stage", "publish", "--json").json()[name]["stageId"]
    pnpm.ok("stage", "reject", rejected, f"--otp={app.code()}")
    assert pnpm.ok("stage", "list", name, "--json").json() == []
    _, doc = packument_status(server, name)
    assert set(doc["versions"]) == {"1.0.0", "1.1.0"} and doc["dist-tags"]["latest"] == "1.1.0", doc
    status, _ = http_json("GET", f"{server.url}-/stage/{rejected}", token=token)
    assert status == 404


# -- yarn 4 ---------------------------------------------------------------------------


def yarn4() -> list[str]:
    if not YARN4_JS.is_file():
        pytest.fail(
            f"no {YARN4_JS}: run `sh tests/tools/install-clients.sh .cache/clients` (`make test` does)",
            pytrace=False,
        )
    return ["node", str(YARN4_JS)]


def ndjson(result: Result) -> list[Any]:
    """yarn's --json: one JSON value a line (and blank lines)."""
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def yarn_staged(yarn: Client, name: str) -> list[tuple[str, str]]:
    """`yarn npm stage list --json NAME`: (stage id, locator) pairs."""
    items = ndjson(yarn.ok("npm", "stage", "list", "--json", name))
    return [(item["children"]["ID"], item["value"]["locator"]) for item in items]


def test_yarn_4_stages_a_new_package_that_approve_publishes_and_reject_discards(
    server: TarholdServer, tmp_path: Path
) -> None:
    argv = yarn4()
    token = server.add_user(unique_name("yarn-maint"))
    app = enable_2fa_over_http(server, token)
    name = unique_name("yarn-staged")

    project = write_package(tmp_path / "package", name, "1.0.0")
    (project / ".yarnrc.yml").write_text(yarnrc(server, tmp_path, token))
    env = client_env(tmp_path / "home")
    # yarn publishes from a project it has installed (its yarn.lock, here in tmp_path);
    # under CI=true it would refuse to write one.
    env["YARN_ENABLE_IMMUTABLE_INSTALLS"] = "false"
    yarn = Client(argv, project, env, server)
    yarn.ok("install")

    published = ndjson(yarn.ok("npm", "publish", "--staged", "--json"))[-1]
    staged = published["stageId"]
    assert UUID.match(staged) and published["staged"] and not published["published"], published
    assert yarn_staged(yarn, name) == [(staged, f"{name}@1.0.0")]
    assert packument_status(server, name)[0] == 404  # nothing of it is visible yet

    status, record = http_json("GET", f"{server.url}-/stage/{staged}", token=token)
    assert status == 200, record
    yarn.ok("npm", "stage", "approve", "--otp", app.code(), staged)
    assert_published_as_staged(server, name, "1.0.0", record["shasum"])
    assert yarn_staged(yarn, name) == []

    write_package(project, name, "1.1.0")
    rejected = ndjson(yarn.ok("npm", "publish", "--staged", "--json"))[-1]["stageId"]
    assert yarn_staged(yarn, name) == [(rejected, f"{name}@1.1.0")]
    yarn.ok("npm", "stage", "reject", "--otp", app.code(), rejected)
    assert yarn_staged(yarn, name) == []
    _, doc = packument_status(server, name)
    assert set(doc["versions"]) == {"1.0.0"} and doc["dist-tags"]["latest"] == "1.0.0", doc
