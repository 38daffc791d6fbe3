"""RegistryDatabase in one SQLite file: the embedded default.

One connection lives on one worker thread; every call hops there. Conditional
writes run inside `BEGIN IMMEDIATE`, so two processes sharing the file (WAL
mode, busy timeout) see the same compare-and-swap semantics DynamoDB gives.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import orjson

from .base import Conflict, NotFound, RegistryDatabase, StorageError

T = TypeVar("T")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    ver INTEGER NOT NULL,
    data BLOB NOT NULL,
    expires INTEGER,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS items_expiring ON items (expires) WHERE expires IS NOT NULL",
)
# DynamoDB deletes expired items by its TTL; here a write deletes them, at
# most once per SWEEP_EVERY seconds, so the file cannot grow with items
# (login sessions, throttling state) that nobody reads any more.
SWEEP_EVERY = 60.0
MANY_AT_ONCE = 500  # keys of one `get_many` statement (SQLite allows 32,766 variables)


def _use_wal(conn: sqlite3.Connection, patience: float = 30.0) -> None:
    """Switch a (new) file to WAL. Workers starting at once on a new file race to
    switch it, and the switch answers "database is locked" at once, without
    waiting out the busy timeout: ask again until it is done (by anyone)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _live(expires: int | None, now: float) -> bool:
    return expires is None or expires > now


class SqliteRegistryDatabase(RegistryDatabase):
    """Items in the table `items(pk, sk, ver, data, expires)`."""

    page_size = 500

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._swept = 0.0

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        await self._run(self._connect)

    def _connect(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Owner-only from the first byte: it holds password hashes and token
        # hashes. SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        _use_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        # One write transaction taken up front: processes opening a new file at
        # once wait for each other (busy timeout) instead of one of them
        # failing to upgrade a read snapshot to a write ("database is locked").
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._conn = conn

    async def sweep(self) -> int:
        """Delete the items whose `expires` has passed now; the number deleted."""
        return await self._run(self._sweep, time.time())

    def _sweep(self, now: float) -> int:
        self._swept = now
        return self.conn.execute(
            "DELETE FROM items WHERE expires IS NOT NULL AND expires <= ?", (now,)
        ).rowcount

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StorageError("sqlite database is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite {self.path}: {exc}") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    # -- items --------------------------------------------------------------

    async def get(self, pk: str, sk: str) -> dict[str, Any]:
        row = await self._run(self._get_row, pk, sk)
        if row is None or not _live(row[2], time.time()):
            raise NotFound(f"no item {pk}/{sk}")
        return _decode(row[1], row[0])

    def _get_row(self, pk: str, sk: str) -> tuple[int, bytes, int | None] | None:
        return self.conn.execute(
            "SELECT ver, data, expires FROM items WHERE pk = ? AND sk = ?", (pk, sk)
        ).fetchone()

    async def get_many(self, pk: str, sks: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = await self._run(self._get_rows, pk, list(dict.fromkeys(sks)))
        now = time.time()
        return {sk: _decode(data, ver) for sk, ver, data, expires in rows if _live(expires, now)}

    def _get_rows(self, pk: str, sks: list[str]) -> list[tuple[str, int, bytes, int | None]]:
        rows: list[tuple[str, int, bytes, int | None]] = []
        for start in range(0, len(sks), MANY_AT_ONCE):
            chunk = sks[start:start + MANY_AT_ONCE]
            marks = ", ".join("?" * len(chunk))
            rows += self.conn.execute(
                f"SELECT sk, ver, data, expires FROM items WHERE pk = ? AND sk IN ({marks})", (pk, *chunk)
            ).fetchall()
        return rows

    async def put(
        self,
        pk: str,
        sk: str,
        item: Mapping[str, Any],
        *,
        if_absent: bool = False,
        if_ver: int | None = None,
        expires: int | None = None,
    ) -> int:
        data = _encode(item)
        return await self._run(self._put, pk, sk, data, if_absent, if_ver, expires)

    def _put(
        self,
        pk: str,
        sk: str,
        data: bytes,
        if_absent: bool,
        if_ver: int | None,
        expires: int | None,
    ) -> int:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = self._get_row(pk, sk)
            live = row is not None and _live(row[2], time.time())
            if if_absent and live:
                raise Conflict(f"item {pk}/{sk} already exists")
            if if_ver is not None and (not live or row is None or row[0] != if_ver):
                raise Conflict(f"item {pk}/{sk} changed since it was read")
            ver = (row[0] + 1) if row is not None and live else 1
            conn.execute(
                "INSERT OR REPLACE INTO items (pk, sk, ver, data, expires)"
                " VALUES (?, ?, ?, ?, ?)",
                (pk, sk, ver, data, expires),
            )
            now = time.time()
            if now - self._swept >= SWEEP_EVERY:
                self._sweep(now)
            conn.execute("COMMIT")
            return ver
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def delete(self, pk: str, sk: str, *, if_ver: int | None = None) -> None:
        await self._run(self._delete, pk, sk, if_ver)

    def _delete(self, pk: str, sk: str, if_ver: int | None) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = self._get_row(pk, sk)
            if row is None or not _live(row[2], time.time()):
                raise NotFound(f"no item {pk}/{sk}")
            if if_ver is not None and row[0] != if_ver:
                raise Conflict(f"item {pk}/{sk} changed since it was read")
            conn.execute("DELETE FROM items WHERE pk = ? AND sk = ?", (pk, sk))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def query(
        self, pk: str, sk_prefix: str = ""
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        # Keyset pagination, like DynamoDB's LastEvaluatedKey: memory stays
        # bounded by one page whatever the partition holds.
        after: str | None = None
        while True:
            rows = await self._run(self._page, pk, sk_prefix, after)
            now = time.time()
            for sk, ver, data, expires in rows:
                if _live(expires, now):
                    yield sk, _decode(data, ver)
            if len(rows) < self.page_size:
                return
            after = rows[-1][0]

    def _page(
        self, pk: str, sk_prefix: str, after: str | None
    ) -> list[tuple[str, int, bytes, int | None]]:
        sql = "SELECT sk, ver, data, expires FROM items WHERE pk = ?"
        args: list[Any] = [pk]
        if sk_prefix:
            # substr() compares exactly; LIKE would treat % and _ as wildcards.
            sql += " AND substr(sk, 1, ?) = ?"
            args += [len(sk_prefix), sk_prefix]
        if after is not None:
            sql += " AND sk > ?"
            args.append(after)
        sql += " ORDER BY sk LIMIT ?"
        args.append(self.page_size)
        return self.conn.execute(sql, args).fetchall()

    async def check_health(self) -> None:
        await self._run(lambda: self.conn.execute("SELECT 1").fetchone())

    def describe(self) -> Mapping[str, str]:
        return {"type": "sqlite", "path": str(self.path)}


def _encode(item: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in item.items() if k != "ver"}
    return orjson.dumps(body)


def _decode(data: bytes, ver: int) -> dict[str, Any]:
    item: dict[str, Any] = orjson.loads(data)
    item["ver"] = ver
    return item
