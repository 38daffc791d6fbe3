"""The real npm CLI installs a dependency tree through tarhold as a caching mirror.

On the embedded storage (a directory with SQLite) and on S3 + DynamoDB (moto):
a fake upstream serves a tree of a dozen packages (nested modules, a shared
leaf under different ranges, a scoped package, a CLI with a bin); a real
`tarhold serve` process has it as its uplink. A cold `npm install tree-root`
must lay down every package byte for byte, with a lockfile that resolves to
tarhold. Then the upstream is stopped, node_modules and the npm cache go, and
`npm ci` (and a fresh `npm install`) must succeed from tarhold's storage
alone — the upstream having seen each tarball exactly once.

The fake upstream runs in the test's event loop, so tarhold runs as a
subprocess and npm through asyncio subprocesses: the loop keeps answering
tarhold's upstream requests while npm waits on tarhold.

The wall times of the cold install and of the warm `npm ci` are printed
(`pytest -s`) and recorded as properties in the test report (`--junitxml`).
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest
import semver
import yaml

from tests.e2e.fixtures import (
    CLIENT_TIMEOUT,
    SERVER_START_TIMEOUT,
    TARHOLD,
    Result,
    TarholdServer,
    TarholdStorage,
    client_env,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.fake_upstream_docs import integrity_of, tarball_filename
from tests.support.servers import ServerProcess, free_port

pytestmark = pytest.mark.npm

TREE_ROOT = "tree-root"
TREE_SIZE = 12


# -- tarhold as a mirror ----------------------------------------------------------


def mirror_config(storage: TarholdStorage, port: int, uplink_url: str) -> dict[str, Any]:
    """A whole config.yaml: `storage`, one uplink, every package proxied to it."""
    return {
        **storage.config(port),
        "uplinks": {"up": {"url": uplink_url, "timeout": "30s"}},
        "packages": {"**": {"access": "$all", "publish": "$authenticated", "proxy": "up"}},
    }


async def start_mirror(storage: TarholdStorage, workdir: Path, uplink_url: str) -> TarholdServer:
    """`tarhold serve -c config.yaml` with `uplink_url` as its uplink, on a free
    port of 127.0.0.1; returns once /-/ping answers, without blocking the loop
    (a fake upstream in this loop must keep answering while tarhold starts).
    """
    if not TARHOLD.is_file():
        pytest.fail(f"no {TARHOLD}: install the project into the venv (`make install-test`)", pytrace=False)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(mirror_config(storage, port, uplink_url)))
    argv = [str(TARHOLD), "serve", "-c", str(config_path)]
    process = ServerProcess.spawn("tarhold", argv, cwd=workdir, log_dir=workdir)
    server = TarholdServer(process, port, storage)
    try:
        await wait_for_ping(server)
    except BaseException:
        server.stop()
        raise
    return server


async def wait_for_ping(server: TarholdServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            if server.process.process.poll() is not None:
                pytest.fail(f"tarhold exited with {server.process.process.returncode}:\n{server.log()}")
            try:
                async with session.get(f"{server.url}-/ping") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"tarhold did not answer GET /-/ping within {SERVER_START_TIMEOUT:.0f}s:\n{server.log()}"
                )
            await asyncio.sleep(0.1)


# -- npm, without blocking the loop -----------------------------------------------


@dataclass
class AsyncNpm:
    """The real npm CLI against one registry, with a throwaway HOME and userconfig;
    the cache is given per command, so a test can start from an empty one."""

    executable: str
    registry: str
    home: Path

    @classmethod
    def create(cls, executable: str, registry: str, home: Path) -> AsyncNpm:
        home.mkdir(parents=True, exist_ok=True)
        npm = cls(executable, registry, home)
        npm.userconfig.write_text("")
        return npm

    @property
    def userconfig(self) -> Path:
        return self.home / ".npmrc"

    def argv(self, args: tuple[str, ...], cache: Path) -> list[str]:
        return [
            self.executable, *args,
            "--registry", self.registry,
            "--userconfig", str(self.userconfig),
            "--cache", str(cache),
            "--no-audit", "--no-fund", "--prefer-online",
            "--update-notifier=false", "--fetch-retries=0", "--fetch-timeout=30000",
        ]

    async def run(self, *args: str, cwd: Path, cache: Path, timeout: float = CLIENT_TIMEOUT) -> Result:
        argv = self.argv(args, cache)
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=client_env(self.home),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except asyncio.TimeoutError:
            process.kill()  # our own child, by its handle
            await process.wait()
            pytest.fail(f"$ {' '.join(argv)} did not finish within {timeout:.0f}s")
        assert process.returncode is not None  # communicate() waited for the exit
        return Result(argv, process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    async def ok(self, *args: str, cwd: Path, cache: Path, server: TarholdServer) -> float:
        """`npm ARGS`, which must succeed; its wall time in seconds. On failure
        the message carries npm's output and the tail of tarhold's log."""
        started = time.monotonic()
        result = await self.run(*args, cwd=cwd, cache=cache)
        elapsed = time.monotonic() - started
        assert result.returncode == 0, f"{result.explain()}\n--- tarhold log (tail)\n{server.log()[-6000:]}"
        return elapsed


# -- what must be installed --------------------------------------------------------


def expected_versions(upstream: FakeUpstream, names: list[str]) -> dict[str, str]:
    """The version npm must pick for each package of the tree: every range in
    the tree (`^1.0.0`, `~1.4.0`, `1.x`...) is met by the highest 1.x, and no
    range accepts 2.x (the shared leaf's `latest`)."""
    picked = {}
    for name in names:
        versions = [semver.Version.parse(v) for v in upstream.packument(name)["versions"]]
        picked[name] = str(max(v for v in versions if v.major == 1))
    return picked


def tarball_files(tarball: bytes) -> dict[str, bytes]:
    """The files of an npm tarball, by path under `package/`."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                files[member.name.removeprefix("package/")] = extracted.read()
    return files


def check_node_modules(project: Path, upstream: FakeUpstream, versions: dict[str, str]) -> None:
    """Every package of the tree, at its version, byte for byte the upstream's files."""
    modules = project / "node_modules"
    present = sorted(str(p.relative_to(modules)) for p in modules.glob("*") if p.name != ".bin")
    present += sorted(str(p.relative_to(modules)) for p in modules.glob("@*/*"))
    for name, version in versions.items():
        package_dir = modules / name
        assert package_dir.is_dir(), f"{name} is not in node_modules (it holds {present})"
        for path, data in tarball_files(upstream.tarball_bytes(name, version)).items():
            installed = package_dir / path
            assert installed.is_file(), f"{name}@{version}: {path} is missing from {package_dir}"
            assert installed.read_bytes() == data, f"{name}@{version}: {path} differs from the upstream tarball"
    cli = f"{TREE_ROOT}-cli"
    assert (modules / ".bin" / cli).exists(), f"the bin of {cli} is not linked in node_modules/.bin"


def check_lockfile(project: Path, server: TarholdServer, upstream: FakeUpstream, versions: dict[str, str]) -> None:
    """package-lock.json resolves every package to tarhold, with the upstream's integrity."""
    lock = json.loads((project / "package-lock.json").read_text())
    packages: dict[str, dict[str, Any]] = lock["packages"]
    for name, version in versions.items():
        entry = packages.get(f"node_modules/{name}")
        assert entry is not None, f"{name} is not in package-lock.json"
        assert entry["version"] == version
        assert entry["resolved"] == f"{server.url}{name}/-/{tarball_filename(name, version)}", entry
        assert entry["integrity"] == integrity_of(upstream.tarball_bytes(name, version))
    resolved = [entry["resolved"] for key, entry in packages.items() if key and "resolved" in entry]
    assert len(resolved) == len(versions), f"npm installed more than the tree: {sorted(packages)}"
    strays = [url for url in resolved if not url.startswith(server.url) or url.startswith(upstream.url)]
    assert not strays, f"resolved URLs not on tarhold: {strays}"


def report_timing(
    record_property: Callable[[str, object], None], backend: str, cold: float, warm: float, fresh: float
) -> None:
    record_property("backend", backend)
    record_property("cold_npm_install_seconds", round(cold, 3))
    record_property("warm_npm_ci_seconds", round(warm, 3))
    record_property("fresh_npm_install_from_storage_seconds", round(fresh, 3))
    print(
        f"\n[npm mirror, {backend}] cold npm install: {cold:.2f}s;"
        f" warm npm ci (upstream stopped): {warm:.2f}s;"
        f" fresh npm install (upstream stopped): {fresh:.2f}s"
    )


# -- the test ------------------------------------------------------------------------


async def test_npm_installs_a_tree_through_the_mirror_then_from_storage_alone(
    tarhold_storage: TarholdStorage,
    npm_cli: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    fake = FakeUpstream()
    await fake.start()
    server: TarholdServer | None = None
    try:
        names = fake.add_tree(TREE_ROOT, TREE_SIZE)
        assert len(names) >= 10
        versions = expected_versions(fake, names)
        server = await start_mirror(tarhold_storage, tmp_path / "tarhold", fake.url)
        npm = AsyncNpm.create(npm_cli, server.url, tmp_path / "home")
        project = tmp_path / "project"
        project.mkdir()

        # Cold: tarhold has nothing, the upstream everything.
        cold = await npm.ok("install", TREE_ROOT, cwd=project, cache=tmp_path / "cache-cold", server=server)
        check_node_modules(project, fake, versions)
        check_lockfile(project, server, fake, versions)

        # Warm: no upstream, no node_modules, an empty npm cache.
        await fake.stop()
        shutil.rmtree(project / "node_modules")
        warm = await npm.ok("ci", cwd=project, cache=tmp_path / "cache-warm", server=server)
        check_node_modules(project, fake, versions)
        check_lockfile(project, server, fake, versions)

        # And without a lockfile: the packuments come from tarhold's copies too.
        fresh_project = tmp_path / "fresh-project"
        fresh_project.mkdir()
        fresh = await npm.ok(
            "install", TREE_ROOT, cwd=fresh_project, cache=tmp_path / "cache-fresh", server=server
        )
        check_node_modules(fresh_project, fake, versions)
        check_lockfile(fresh_project, server, fake, versions)

        counts = {f"{name}@{version}": fake.tarball_count(name, version) for name, version in versions.items()}
        assert all(count == 1 for count in counts.values()), f"upstream tarball requests: {counts}"
        failed = [(r.method, r.path, r.status) for r in fake.requests if r.status not in (200, 304)]
        assert not failed, f"upstream requests that did not succeed: {failed}"
        report_timing(record_property, tarhold_storage.backend, cold, warm, fresh)
    finally:
        if server is not None:
            server.stop()
        await fake.stop()
