"""npm, pnpm and yarn 4 install through a `tarhold serve` that holds young releases back.

One server for the module (embedded storage), the fake upstream as its
uplink and `policy: {'**': {min_age: 3d}}`. `quarantine-demo` 1.1.0 (its
`latest`) came out an hour ago and 1.0.0 long ago: every client asked for
the package must install 1.0.0, the newest release out of quarantine. A
run-time block added through the admin API after a lockfile was written
makes `npm ci` of that lockfile fail with the rule's reason in npm's output.

The fake upstream runs on an event loop in a thread of its own, so the
clients can be run synchronously while tarhold keeps fetching from it.
Every client gets its HOME, cache and store in the test's temporary
directory, and talks to nothing but the local server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.client_projects import new_project, yarnrc
from tests.e2e.fixtures import (
    CLIENT_TIMEOUT,
    ROOT,
    NewNpm,
    Result,
    TarholdServer,
    client_bin,
    embedded_tarhold,
    http_json,
    run_client,
)
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.npm

ADMIN_PASSWORD = "e2e policy operator password"
ADMIN_HEADERS = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
YARN4_JS = ROOT / ".cache" / "clients" / "yarn4" / "node_modules" / "@yarnpkg" / "cli-dist" / "bin" / "yarn.js"
DEMO = "quarantine-demo"  # 1.1.0 (latest) an hour old, 1.0.0 old: 1.0.0 is what installs
PINNED = "pinned-demo"  # 1.0.0 and 1.0.1, both old: 1.0.1 is locked, then blocked
THREAD_TIMEOUT = 30.0


# -- the fake upstream in a thread, and the server --------------------------------


@contextmanager
def upstream_in_thread() -> Iterator[FakeUpstream]:
    """A started FakeUpstream whose loop runs in a daemon thread; stopped at the end."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-upstream", daemon=True)
    thread.start()
    fake = FakeUpstream()
    try:
        asyncio.run_coroutine_threadsafe(fake.start(), loop).result(THREAD_TIMEOUT)
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(THREAD_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(THREAD_TIMEOUT)
        loop.close()


def publish_demo_packages(fake: FakeUpstream) -> None:
    now = datetime.now(UTC)
    fake.add_package(DEMO, ["1.0.0", "1.1.0"], latest="1.1.0")
    fake.set_published(DEMO, "1.0.0", now - timedelta(days=400))
    fake.set_published(DEMO, "1.1.0", now - timedelta(hours=1))
    fake.add_package(PINNED, ["1.0.0", "1.0.1"], latest="1.0.1")
    fake.set_published(PINNED, "1.0.0", now - timedelta(days=400))
    fake.set_published(PINNED, "1.0.1", now - timedelta(days=300))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TarholdServer]:
    """`tarhold serve` with the fake upstream as uplink, a 3-day quarantine and an admin."""
    workdir = tmp_path_factory.mktemp("policy-mirror")
    with upstream_in_thread() as fake, pytest.MonkeyPatch.context() as env:
        publish_demo_packages(fake)
        config = {
            "uplinks": {"up": {"url": fake.url, "timeout": "30s"}},
            "packages": {"**": {"access": "$all", "publish": "$authenticated", "proxy": "up"}},
            "policy": {"**": {"min_age": "3d"}},
        }
        # The server process inherits the environment it is started with.
        env.setenv("TARHOLD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        env.delenv("TARHOLD_ADMIN_TOKEN", raising=False)
        env.delenv("TARHOLD_ADMIN_USER", raising=False)
        with embedded_tarhold(workdir, config=config) as server:
            env.undo()
            yield server


def installed_version(project: Path, name: str) -> str:
    path = project / "node_modules" / name / "package.json"
    assert path.is_file(), f"{name} is not installed in {project}"
    return str(json.loads(path.read_text())["version"])


def ok(result: Result, server: TarholdServer) -> Result:
    assert result.returncode == 0, f"{result.explain()}\n--- tarhold log (tail)\n{server.log()}"
    return result


def yarn4() -> list[str]:
    """yarn 4 from .cache/clients, run with node; a clear failure when it is missing."""
    if not YARN4_JS.is_file():
        pytest.fail(
            f"no {YARN4_JS}: run `sh tests/tools/install-clients.sh .cache/clients` (`make test` does)",
            pytrace=False,
        )
    return ["node", str(YARN4_JS)]


# -- quarantine -------------------------------------------------------------------


def test_npm_installs_the_newest_release_out_of_quarantine(mirror: TarholdServer, new_npm: NewNpm) -> None:
    npm = new_npm(mirror, None)
    project = npm.install(DEMO)
    assert installed_version(project, DEMO) == "1.0.0"
    assert json.loads((project / "package.json").read_text())["dependencies"][DEMO] == "^1.0.0"


def test_pnpm_installs_the_newest_release_out_of_quarantine(mirror: TarholdServer, tmp_path: Path) -> None:
    project, env = new_project(tmp_path)
    (project / ".npmrc").write_text(f"registry={mirror.url}\n")
    ok(run_client(
        [
            str(client_bin("pnpm")), "add", DEMO,
            "--store-dir", str(tmp_path / "pnpm-store"),
            "--cache-dir", str(tmp_path / "pnpm-cache"),
            "--reporter=append-only", "--config.update-notifier=false",
        ],
        cwd=project, env=env, timeout=CLIENT_TIMEOUT,
    ), mirror)
    assert installed_version(project, DEMO) == "1.0.0"
    assert f"{DEMO}@1.0.0" in (project / "pnpm-lock.yaml").read_text()


def test_yarn4_installs_the_newest_release_out_of_quarantine(mirror: TarholdServer, tmp_path: Path) -> None:
    project, env = new_project(tmp_path)
    (project / ".yarnrc.yml").write_text(yarnrc(mirror, tmp_path))
    # Under CI=true yarn makes installs immutable (no yarn.lock written); this project is new.
    env["YARN_ENABLE_IMMUTABLE_INSTALLS"] = "false"
    result = ok(run_client([*yarn4(), "add", DEMO], cwd=project, env=env, timeout=CLIENT_TIMEOUT), mirror)
    assert "Yarn 4." in result.stdout, result.explain()
    assert installed_version(project, DEMO) == "1.0.0"
    lock = (project / "yarn.lock").read_text()
    assert f'resolution: "{DEMO}@npm:1.0.0"' in lock, lock


# -- a run-time block -------------------------------------------------------------


def add_block(server: TarholdServer, package: str, versions: str, reason: str) -> str:
    body = {"kind": "block", "package": package, "versions": versions, "reason": reason}
    status, rule = http_json("POST", f"{server.url}-/tarhold/policy", body, headers=ADMIN_HEADERS)
    assert status == 201, f"POST /-/tarhold/policy: {status} {rule}"
    return str(rule["id"])


def remove_rule(server: TarholdServer, rule_id: str) -> None:
    status, answer = http_json("DELETE", f"{server.url}-/tarhold/policy/{rule_id}", headers=ADMIN_HEADERS)
    assert status == 200, f"DELETE /-/tarhold/policy/{rule_id}: {status} {answer}"


def test_npm_ci_of_a_lockfile_pinned_to_a_blocked_version_fails_with_the_reason(
    mirror: TarholdServer, new_npm: NewNpm
) -> None:
    npm = new_npm(mirror, None)
    project = npm.workdir("ci")
    (project / "package.json").write_text(json.dumps({"name": "e2e-ci", "version": "0.0.0", "private": True}))
    npm.ok("install", f"{PINNED}@1.0.1", cwd=project)
    lock = json.loads((project / "package-lock.json").read_text())
    tarball = f"{mirror.url}{PINNED}/-/{PINNED}-1.0.1.tgz"
    assert lock["packages"][f"node_modules/{PINNED}"]["resolved"] == tarball

    rule_id = add_block(mirror, PINNED, "1.0.1", "compromised release")
    try:
        shutil.rmtree(project / "node_modules")
        shutil.rmtree(npm.cache)  # nothing but the registry can hand npm the tarball
        failed = npm.fails("ci", cwd=project)
        message = f"{PINNED}@1.0.1 is blocked by rule {rule_id} (compromised release)"
        assert f"403 Forbidden - GET {tarball} - {message}" in failed.output, failed.explain()
        assert not (project / "node_modules" / PINNED).exists()

        # Without the lockfile npm resolves the range among what is left: 1.0.0.
        fresh = npm.install(f"{PINNED}@^1.0.0")
        assert installed_version(fresh, PINNED) == "1.0.0"
    finally:
        remove_rule(mirror, rule_id)
