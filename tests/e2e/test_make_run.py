"""`make run` on a fresh clone is a working npm mirror with nothing to configure (issue 20).

The project's files are copied to a fresh checkout (the Makefile's run
target is under test) that reuses this run's virtualenv. HOME is a
throwaway one whose .npmrc names a fake upstream registry, as a newcomer's
names the registry their npm uses. With no config file anywhere, `make run`
must mirror that registry and say so in its banner, answer a 404 saying the
uplink was asked, and the real npm must install, through it, a package that
exists only upstream.

The fake upstream runs in the test's event loop: everything that waits on
tarhold (the start, HTTP requests, npm) runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.fixtures import Npm, client_env, http_json, unique_name
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import free_port

pytestmark = pytest.mark.npm

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ["Makefile", "pyproject.toml", "README.md", "registry", "storage", "uplinks"]
START_TIMEOUT = 60.0


def fresh_checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, checkout / name)
    # Reuse this run's virtualenv (already installed by `make test`) instead of
    # installing a second one: the Makefile's run target is under test, not
    # pip. PIP_NO_INDEX makes a needless reinstall fail loudly, not download.
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    return checkout


def wait_for_ping(url: str, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}-/ping", timeout=2) as response:  # noqa: S310 - loopback
                return response.read() == b"{}"
        except OSError:
            time.sleep(0.3)
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    # make and the server share a new process group this test created.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def test_make_run_mirrors_the_registry_npm_uses_from_a_fresh_clone(tmp_path: Path, npm_cli: str) -> None:
    checkout = fresh_checkout(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "make-run.log"
    async with FakeUpstream() as upstream:
        name = unique_name("only-upstream")
        upstream.add_package(name, ["1.0.0"])
        (home / ".npmrc").write_text(f"registry={upstream.url}/\n")
        env = {**client_env(home), "TARHOLD_CONFIG": "", "PIP_NO_INDEX": "1"}
        env.pop("TARHOLD_UPSTREAM_URL", None)
        with log.open("wb") as output:
            proc = subprocess.Popen(
                ["make", "run", f"RUN_LISTEN=127.0.0.1:{port}"], cwd=checkout, env=env,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            started = await asyncio.to_thread(wait_for_ping, url, proc)
            assert started, f"no answer from make run; it said:\n{log.read_text()}"
            status, body = await asyncio.to_thread(http_json, "GET", f"{url}{name}-absent")
            assert (status, body) == (404, {
                "error": f"package {name}-absent not found: not published here, and uplink upstream has no such package",
            })
            npm_home = tmp_path / "npm"
            npm_home.mkdir()
            npm = Npm(url, npm_home, env=client_env(npm_home))
            project = await asyncio.to_thread(npm.install, f"{name}@1.0.0")
        finally:
            await asyncio.to_thread(stop, proc)
        assert upstream.count(name) >= 1, "the package did not come from the upstream"
    installed = (project / "node_modules" / name / "package.json").read_text()
    assert '"version": "1.0.0"' in installed or '"version":"1.0.0"' in installed

    said = log.read_text()
    banner = [line.split(maxsplit=1) for line in said.splitlines() if line.startswith("  ")]
    rows = {row[0]: row[1] for row in banner if len(row) == 2}
    assert f"tarhold is serving at {url}" in said, said
    assert rows["mirrors"] == f"{upstream.url}/ (uplink upstream, npm's registry: `npm config get registry`)", said
    assert rows["data"].startswith(f"{checkout / 'data'} "), said
    assert rows["npm"].startswith(f"npm config set registry {url}"), said
    for client in ("pnpm config set registry", "yarn config set registry", "yarn config set npmRegistryServer",
                   "bunfig.toml: [install] registry", f"npm adduser --registry {url} (registration is open)"):
        assert client in said, client
    # Nothing to configure: no config file was written, the data is in ./data.
    assert not list(checkout.glob("*.y*ml")) + list((checkout / "data").glob("*.y*ml")), "a config file appeared"
    assert (checkout / "data" / ".tarhold-db.sqlite3").exists()
