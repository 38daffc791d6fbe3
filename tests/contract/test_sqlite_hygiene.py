"""The embedded database keeps itself small and private (issue 14, item 8 and hardening)."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

from storage.fs import FsPackageStore
from storage.sqlite import SqliteRegistryDatabase


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])


async def test_expired_items_are_deleted_from_the_file_by_later_writes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = SqliteRegistryDatabase(path)
    await db.open()
    try:
        gone = int(time.time()) - 1
        db._swept = time.time()  # just swept: the writes below do not sweep
        for i in range(300):  # e.g. anonymous login sessions nobody finished
            await db.put("LOGIN", f"session-{i}", {"n": i}, expires=gone)
        await db.put("CONFIG", "kept", {"v": 1})
        assert await db.sweep() == 300  # what the periodic sweep on a write does
        await db.put("LOGIN", "fresh", {"n": 0}, expires=int(time.time()) + 600)
    finally:
        await db.close()
    assert _rows(path) == 2


async def test_a_write_sweeps_once_the_interval_has_passed(tmp_path: Path) -> None:
    db = SqliteRegistryDatabase(tmp_path / "db.sqlite3")
    await db.open()
    try:
        await db.put("LOGIN", "old", {"n": 1}, expires=int(time.time()) - 1)
        db._swept = 0.0  # the last sweep was long ago
        await db.put("CONFIG", "any", {"v": 1})
    finally:
        await db.close()
    assert _rows(tmp_path / "db.sqlite3") == 1


async def test_the_database_file_and_data_directory_are_owner_only(tmp_path: Path) -> None:
    root = tmp_path / "data"
    store = FsPackageStore(root)
    await store.open()
    db = SqliteRegistryDatabase(root / ".tarhold-db.sqlite3")
    await db.open()
    try:
        await db.put("CONFIG", "x", {"v": 1})
    finally:
        await db.close()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for name in (".tarhold-db.sqlite3",):
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o600


OPEN_AT_ONCE = """
import asyncio, sys
from storage.sqlite import SqliteRegistryDatabase

async def main() -> None:
    db = SqliteRegistryDatabase(sys.argv[1])
    await db.open()
    await db.close()

asyncio.run(main())
"""


def test_workers_opening_a_new_database_file_at_once_all_succeed(tmp_path: Path) -> None:
    """`serve --workers N` on a fresh directory: N processes switch one new file to WAL
    at the same moment; the switch must not fail with "database is locked"."""
    for round_ in range(4):
        path = tmp_path / f"db-{round_}.sqlite3"
        processes = [
            subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(path)], stderr=subprocess.PIPE)
            for _ in range(6)
        ]
        failures = [p.stderr.read().decode() for p in processes if p.wait(60) != 0 and p.stderr]
        assert not failures, failures[0]
