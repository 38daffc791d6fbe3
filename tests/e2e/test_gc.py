"""`tarhold gc --cached-older-than`: mirrored packages nobody asked for go, nothing else.

The storage is the embedded one (a directory and SQLite), filled directly
through the contracts: a local package, mirrored packages fetched or asked
for at chosen times. Access stamps are written by the app's packument and
tarball handlers, tested over HTTP at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from registry.config import parse_config
from registry.domain.packages import MIRROR_MARK
from registry.domain.usage import ACCESS_PK, AccessRecorder
from registry.http.app import SERVER_KWARGS, create_app
from registry.http.appkeys import DATABASE, STORE
from registry.ops import cli
from registry.ops.gc import collect, parse_age
from storage.backends import build_backends
from storage.base import NotFound, PackageStore, RegistryDatabase

DAY = 86400.0
NOW = time.time()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def put_package(store: PackageStore, name: str, *, fetched: float | None) -> None:
    """A package with one version and its tarball; mirrored when `fetched` is given."""
    short = name.split("/")[-1]
    doc: dict[str, Any] = {
        "name": name, "dist-tags": {"latest": "1.0.0"}, "time": {"1.0.0": "2024-01-01T00:00:00.000Z"},
        "versions": {"1.0.0": {"name": name, "version": "1.0.0",
                               "dist": {"tarball": f"http://upstream.test/{name}/-/{short}-1.0.0.tgz"}}},
    }
    if fetched is not None:
        doc[MIRROR_MARK] = {"uplink": "upstream", "etag": None, "last_modified": None, "fetched": fetched}
    await store.write_tarball(name, f"{short}-1.0.0.tgz", chunks(b"tarball of " + name.encode()))
    await store.write_packument(name, orjson.dumps(doc), if_absent=True)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[tuple[PackageStore, RegistryDatabase]]:
    store, db = build_backends("fs", path=str(tmp_path / "storage"))
    await store.open()
    await db.open()
    await put_package(store, "ours", fetched=None)  # published here, never used
    await put_package(store, "@acme/ours", fetched=None)
    await put_package(store, "old-cached", fetched=NOW - 200 * DAY)
    await put_package(store, "@scope/old-cached", fetched=NOW - 120 * DAY)
    await put_package(store, "used-lately", fetched=NOW - 200 * DAY)
    await db.put(ACCESS_PK, "used-lately", {"day": "-", "at": int(NOW - 3 * DAY)})
    await put_package(store, "fetched-lately", fetched=NOW - 10 * DAY)
    await put_package(store, "used-long-ago", fetched=NOW - 300 * DAY)
    await db.put(ACCESS_PK, "used-long-ago", {"day": "-", "at": int(NOW - 95 * DAY)})
    await db.put(ACCESS_PK, "never-existed", {"day": "-", "at": int(NOW - 95 * DAY)})
    try:
        yield store, db
    finally:
        await db.close()
        await store.close()


REMOVED = {"old-cached", "@scope/old-cached", "used-long-ago"}
KEPT = {"ours", "@acme/ours", "used-lately", "fetched-lately"}


async def present(store: PackageStore, name: str) -> bool:
    try:
        await store.read_packument(name)
    except NotFound:
        return False
    return True


async def test_gc_removes_old_mirrored_packages_with_their_tarballs_and_keeps_the_rest(
    storage: tuple[PackageStore, RegistryDatabase]
) -> None:
    store, db = storage
    said: list[str] = []
    report = await collect(store, db, older_than=90 * DAY, now=NOW, say=said.append)
    assert {name for name, _, _ in report.removed} == REMOVED
    assert (report.kept_local, report.kept_recent, report.failed) == (2, 2, 0)
    for name in REMOVED:
        assert not await present(store, name)
        assert await store.list_files(name) == []
        assert any(line.startswith(f"removing {name} ") for line in said)
    for name in KEPT:
        assert await present(store, name)
        assert len(await store.list_files(name)) == 2
    assert report.stale_stamps == 1
    for stamp in ("used-long-ago", "never-existed"):
        with pytest.raises(NotFound):
            await db.get(ACCESS_PK, stamp)
    assert (await db.get(ACCESS_PK, "used-lately"))["at"] == int(NOW - 3 * DAY)
    assert (await collect(store, db, older_than=90 * DAY, now=NOW, say=said.append)).removed == []


async def test_gc_dry_run_lists_what_would_go_and_removes_nothing(
    storage: tuple[PackageStore, RegistryDatabase]
) -> None:
    store, db = storage
    said: list[str] = []
    report = await collect(store, db, older_than=90 * DAY, dry_run=True, now=NOW, say=said.append)
    assert {name for name, _, _ in report.removed} == REMOVED
    assert sorted(line.split()[2] for line in said) == sorted(REMOVED)
    for name in REMOVED | KEPT:
        assert await present(store, name)
        assert len(await store.list_files(name)) == 2
    assert (await db.get(ACCESS_PK, "never-existed"))["at"] == int(NOW - 95 * DAY)


async def test_gc_never_removes_a_local_package_however_old(
    storage: tuple[PackageStore, RegistryDatabase]
) -> None:
    store, db = storage
    report = await collect(store, db, older_than=0, now=NOW + 1000 * DAY, say=lambda _: None)
    assert {name for name, _, _ in report.removed} == REMOVED | {"used-lately", "fetched-lately"}
    assert await present(store, "ours") and await present(store, "@acme/ours")


def test_gc_command_dry_run_and_real_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("registry.ops.cli_ops.configure_logging", lambda config: None)
    directory = tmp_path / "storage"

    async def fill() -> None:
        store, db = build_backends("fs", path=str(directory))
        await store.open()
        await db.open()
        await put_package(store, "ours", fetched=None)
        await put_package(store, "old-cached", fetched=NOW - 100 * DAY)
        await db.close()

    asyncio.run(fill())
    argv = ["gc", "--cached-older-than", "90d", "--storage", str(directory)]
    assert cli.main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove old-cached (mirrored" in out and "would remove 1 mirrored packages (2 files)" in out
    assert (directory / "old-cached" / "package.json").exists()
    assert cli.main(argv) == 0
    assert "removed 1 mirrored packages (2 files); kept 1 local" in capsys.readouterr().out
    assert not (directory / "old-cached" / "package.json").exists()
    assert (directory / "ours" / "package.json").exists()
    assert cli.main(["gc", "--cached-older-than", "ninety days", "--storage", str(directory)]) == 2


def test_ages_read_as_gc_expects() -> None:
    assert parse_age("90d") == 90 * DAY
    assert parse_age("12h") == 12 * 3600
    assert parse_age("2w") == 14 * DAY
    assert parse_age("30") == 30 * DAY
    with pytest.raises(ValueError):
        parse_age("soon")


# -- access stamps --------------------------------------------------------------------


class CountingDatabase:
    """Records puts; fails the first one when asked to."""

    def __init__(self, fail_first: bool = False) -> None:
        self.puts: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_first = fail_first

    async def put(self, pk: str, sk: str, item: dict[str, Any], **_: Any) -> int:
        if self.fail_first:
            self.fail_first = False
            raise OSError("database down")
        self.puts.append((pk, sk, item))
        return 1


async def test_access_is_written_once_per_name_per_period_and_retried_after_a_failure() -> None:
    db = CountingDatabase(fail_first=True)
    recorder = AccessRecorder(db)  # type: ignore[arg-type]
    recorder.note("a")  # fails: not remembered as written
    await recorder.drain()
    for _ in range(5):
        recorder.note("a")
        recorder.note("b")
    await recorder.drain()
    assert sorted(sk for _, sk, _ in db.puts) == ["a", "b"]
    assert all(pk == ACCESS_PK and item["at"] >= int(NOW) for pk, _, item in db.puts)


async def test_packument_and_tarball_requests_stamp_the_last_access(aiohttp_client: Any, tmp_path: Path) -> None:
    config = parse_config({"storage": str(tmp_path / "storage"), "log": {"level": "debug"}})
    server = TestServer(create_app(config))
    await server.start_server(**SERVER_KWARGS)
    client: TestClient = await aiohttp_client(server)
    db = client.app[DATABASE]
    await put_package(client.app[STORE],
                      "old-cached", fetched=NOW - 100 * DAY)
    assert (await client.get("/never-there")).status == 404
    response = await client.get("/old-cached/-/old-cached-1.0.0.tgz")
    assert response.status == 200
    for _ in range(50):
        try:
            item = await db.get(ACCESS_PK, "old-cached")
            break
        except NotFound:
            await asyncio.sleep(0.02)
    else:
        pytest.fail("no access stamp was written for old-cached")
    assert item["at"] >= int(NOW)
    report = await collect(client.app[STORE],
                           db, older_than=90 * DAY, say=lambda _: None)
    assert report.removed == [] and report.kept_recent == 1
