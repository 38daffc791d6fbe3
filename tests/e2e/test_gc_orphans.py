"""`tarhold gc` sweeps orphan tarballs (issue 15), on the embedded storage and on S3 + DynamoDB (moto).

An orphan is a tarball no version of its package's stored packument names:
what a publish leaves when its process dies between writing the tarball and
the packument (with or without an earlier version), what a tombstone or a
mirrored document no longer lists, and on disk the temp file of a tarball
write that was killed. The storage is filled through the store contract, as
those processes would have left it; the real `tarhold gc` command sweeps it.
Orphans younger than `--orphans-older-than` stay (a publish in progress
writes its tarball first), a dry run deletes nothing, listed tarballs are
never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from registry.domain.packages import MIRROR_MARK
from registry.domain.staging import STAGE_PK, StageRecord, staged_filename
from registry.ops import cli
from registry.ops.gc import collect
from storage.backends import build_backends
from storage.base import PackageStore, RegistryDatabase, TarballInfo
from storage.fs import FsPackageStore
from tests.e2e.fixtures import TARHOLD, TarholdStorage
from tests.support.servers import free_port

# name -> tarballs its packument lists, tarballs no packument lists
LISTED = {
    "ours": ["ours-1.0.0.tgz"],
    "@acme/ui": ["ui-1.0.0.tgz"],
    "mirrored": ["mirrored-2.0.0.tgz"],
}
ORPHANS = {
    ("ours", "ours-1.1.0.tgz"),  # a publish of 1.1.0 died before its packument write
    ("@acme/ui", "ui-2.0.0.tgz"),
    ("first-publish", "first-publish-1.0.0.tgz"),  # a first publish died: no packument at all
    ("gone", "gone-1.0.0.tgz"),  # unpublished (a tombstone), its cleanup failed
    ("mirrored", "mirrored-1.0.0.tgz"),  # no longer in the uplink's document
}


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def packument(name: str, versions: list[str], **extra: Any) -> bytes:
    short = name.split("/")[-1]
    doc = {
        "name": name, "dist-tags": {"latest": versions[-1]} if versions else {},
        "versions": {
            v: {"name": name, "version": v, "dist": {"tarball": f"http://upstream.test/{name}/-/{short}-{v}.tgz"}}
            for v in versions
        },
        "time": {v: "2024-01-01T00:00:00.000Z" for v in versions}, **extra,
    }
    return orjson.dumps(doc)


async def opened(storage: TarholdStorage) -> PackageStore:
    if storage.directory is not None:
        store, _ = build_backends("fs", path=str(storage.directory))
    else:
        store, _ = build_backends("aws-s3-storage", section=storage.store_section)
    await store.open()
    return store


async def fill(storage: TarholdStorage) -> None:
    store = await opened(storage)
    try:
        for name, filenames in LISTED.items():
            for filename in filenames:
                await store.write_tarball(name, filename, chunks(filename.encode()))
        await store.write_packument("ours", packument("ours", ["1.0.0"]), if_absent=True)
        await store.write_packument("@acme/ui", packument("@acme/ui", ["1.0.0"]), if_absent=True)
        mark = {MIRROR_MARK: {"uplink": "up", "etag": None, "last_modified": None, "fetched": time.time()}}
        await store.write_packument("mirrored", packument("mirrored", ["2.0.0"], **mark), if_absent=True)
        tombstone = {"unpublished": {"time": "2024-02-01T00:00:00.000Z", "versions": ["1.0.0"]}}
        await store.write_packument("gone", packument("gone", [], time=tombstone), if_absent=True)
        for name, filename in ORPHANS:
            await store.write_tarball(name, filename, chunks(b"orphan " + filename.encode()))
    finally:
        await store.close()


async def tarballs(storage: TarholdStorage) -> set[tuple[str, str]]:
    store = await opened(storage)
    try:
        names = [name async for name in store.stored_package_names()]
        return {(name, f) for name in names for f in await store.list_files(name) if f.endswith(".tgz")}
    finally:
        await store.close()


def gc(storage: TarholdStorage, workdir: Path, *args: str, real: bool = False) -> str:
    """`tarhold gc ARGS` on this storage, in this process (quicker) or as the real command; its output."""
    config = workdir / "gc.yaml"
    config.write_text(yaml.safe_dump(storage.config(free_port())))
    argv = ["gc", "-c", str(config), *args]
    if storage.directory is not None:
        argv += ["--storage", str(storage.directory)]
    if not real:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(argv) == 0, out.getvalue()
        return out.getvalue()
    env = {**os.environ, "TARHOLD_CONFIG": ""}
    done = subprocess.run([str(TARHOLD), *argv], check=False, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(autouse=True)
def quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs leave the test process's logging as pytest set it."""
    monkeypatch.setattr("registry.ops.cli_ops.configure_logging", lambda config: None)


def listed() -> set[tuple[str, str]]:
    return {(name, f) for name, filenames in LISTED.items() for f in filenames}


def test_gc_sweeps_orphans_past_the_grace_and_nothing_else(tarhold_storage: TarholdStorage, tmp_path: Path) -> None:
    asyncio.run(fill(tarhold_storage))
    assert asyncio.run(tarballs(tarhold_storage)) == listed() | ORPHANS

    young = gc(tarhold_storage, tmp_path)  # the default grace: an hour
    assert f"removed 0 orphan tarballs and 0 leftovers of unfinished writes; kept {len(ORPHANS)} younger" in young
    assert asyncio.run(tarballs(tarhold_storage)) == listed() | ORPHANS

    dry = gc(tarhold_storage, tmp_path, "--orphans-older-than", "0s", "--dry-run")
    assert f"would remove {len(ORPHANS)} orphan tarballs" in dry
    for name, filename in ORPHANS:
        assert f"would remove orphan tarball {name}/{filename} " in dry
    assert asyncio.run(tarballs(tarhold_storage)) == listed() | ORPHANS

    swept = gc(tarhold_storage, tmp_path, "--orphans-older-than", "0s", real=True)
    assert f"removed {len(ORPHANS)} orphan tarballs" in swept
    assert asyncio.run(tarballs(tarhold_storage)) == listed()


def leave_temp_file(directory: Path, age: float) -> Path:
    """The temp file of a tarball write killed mid-stream, last written `age` seconds ago."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    os.write(fd, b"half a tarball")
    os.close(fd)
    os.utime(name, (time.time() - age, time.time() - age))
    return Path(name)


def test_gc_sweeps_old_temp_files_and_orphans_on_disk_and_keeps_young_ones(tmp_path: Path) -> None:
    storage = TarholdStorage("embedded", directory=tmp_path / "storage")
    asyncio.run(fill(storage))
    store = FsPackageStore(tmp_path / "storage")
    old_orphan = store.file_path("ours", "ours-1.1.0.tgz")
    os.utime(old_orphan, (time.time() - 7200, time.time() - 7200))
    old_temp = leave_temp_file(store.package_dir("ours"), age=7200)
    lonely_temp = leave_temp_file(store.package_dir("killed-first-publish"), age=7200)
    young_temp = leave_temp_file(store.package_dir("ours"), age=60)

    done = gc(storage, tmp_path)  # the default grace: an hour
    assert "removed 1 orphan tarballs and 2 leftovers of unfinished writes" in done
    young = len(ORPHANS) - 1 + 1  # the other orphans, and the young temp file
    assert f"kept {young} younger than 1h" in done
    assert not old_orphan.exists() and not old_temp.exists() and not lonely_temp.exists()
    assert young_temp.exists()
    assert asyncio.run(tarballs(storage)) == listed() | (ORPHANS - {("ours", "ours-1.1.0.tgz")})


def test_gc_refuses_an_age_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "storage"
    assert cli.main(["gc", "--storage", str(directory), "--orphans-older-than", "soon"]) == 2
    assert "--orphans-older-than" in capsys.readouterr().err
    assert not directory.exists()


class RepublishingStore(FsPackageStore):
    """Writes a tarball again right when gc checks it, as a publish of that very version would."""

    async def stat_tarball(self, name: str, filename: str) -> TarballInfo:
        await asyncio.sleep(0.01)  # a later mtime, whatever the clock's resolution
        await self.write_tarball(name, filename, chunks(b"published for real"))
        return await super().stat_tarball(name, filename)


async def test_an_orphan_written_again_while_gc_looks_is_kept(tmp_path: Path) -> None:
    storage = TarholdStorage("embedded", directory=tmp_path / "storage")
    await fill(storage)
    _, db = build_backends("fs", path=str(tmp_path / "storage"))
    await db.open()
    racing = RepublishingStore(tmp_path / "storage")
    said: list[str] = []
    report = await collect(racing, db, older_than=None, orphans_older_than=0, say=said.append)
    assert report.orphans == [] and len(said) == 2 * len(ORPHANS)
    assert all("written again while gc looked" in line for line in said[1::2])
    assert await tarballs(storage) == listed() | ORPHANS
    await db.close()


def stage_of(name: str, version: str) -> StageRecord:
    return StageRecord(
        id=str(uuid.uuid4()), name=name, version=version, tag="latest", created="2024-01-01T00:00:00.000Z",
        actor="alice", shasum="0" * 40, integrity="sha512-AAAA", size=6,
    )


async def leave_stages(storage: TarholdStorage) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """What `npm stage publish` leaves (a staged tarball and its STAGE record) for a local, a
    mirrored and a new package, and the file of a rejected stage whose delete failed."""
    if storage.directory is not None:
        store, db = build_backends("fs", path=str(storage.directory))
    else:
        store, db = build_backends("aws-s3-storage", section=storage.store_section)
    await store.open()
    await db.open()
    waiting = [stage_of("ours", "2.0.0"), stage_of("mirrored", "3.0.0"), stage_of("@acme/new", "1.0.0")]
    try:
        for record in waiting:
            await store.write_tarball(record.name, record.filename, chunks(b"staged"))
            await put_record(db, record)
        rejected = staged_filename("ours", "3.0.0", str(uuid.uuid4()))
        await store.write_tarball("ours", rejected, chunks(b"rejected"))
    finally:
        await db.close()
        await store.close()
    return {(r.name, r.filename) for r in waiting}, {("ours", rejected)}


async def put_record(db: RegistryDatabase, record: StageRecord) -> None:
    await db.put(STAGE_PK, record.id, record.as_item(), if_absent=True)


def test_gc_keeps_the_tarballs_of_stages_waiting_for_review(tarhold_storage: TarholdStorage, tmp_path: Path) -> None:
    asyncio.run(fill(tarhold_storage))
    waiting, rejected = asyncio.run(leave_stages(tarhold_storage))
    assert asyncio.run(tarballs(tarhold_storage)) == listed() | ORPHANS | waiting | rejected
    done = gc(tarhold_storage, tmp_path, "--orphans-older-than", "0s", "--cached-older-than", "0s", real=True)
    assert f"removed {len(ORPHANS) + 1} orphan tarballs" in done
    # The mirrored package has a stage waiting: it stays too, however long unused.
    assert asyncio.run(tarballs(tarhold_storage)) == listed() | waiting
