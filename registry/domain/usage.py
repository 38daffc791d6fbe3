"""When each package was last asked for, for `tarhold gc --cached-older-than`.

Items `ACCESS` / `{package name}` hold `{"day": "YYYY-MM-DD", "at": epoch}`.
A request never waits for that write: it is a background task whose errors
are logged, and each process writes a given name at most once per
WRITE_EVERY seconds, so a hot package costs one small write an hour per
instance, not one per request. The granularity gc needs is days.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from cachetools import TTLCache

from storage.base import RegistryDatabase

LOG = logging.getLogger(__name__)

ACCESS_PK = "ACCESS"
WRITE_EVERY = 3600.0
REMEMBERED_NAMES = 100_000
SHUTDOWN_WAIT = 5.0


class AccessRecorder:
    """Throttled, fire-and-forget last-access writes for one process."""

    def __init__(self, db: RegistryDatabase, every: float = WRITE_EVERY) -> None:
        self.db = db
        self._written: TTLCache[str, bool] = TTLCache(REMEMBERED_NAMES, every)
        self._tasks: set[asyncio.Task[None]] = set()

    def note(self, name: str) -> None:
        """Record that `name` was requested now; returns at once."""
        if name in self._written:
            return
        self._written[name] = True
        task = asyncio.get_running_loop().create_task(self._write(name, time.time()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, name: str, at: float) -> None:
        try:
            await self.db.put(ACCESS_PK, name, {"day": day_of(at), "at": int(at)})
        except Exception:  # noqa: BLE001 - an access stamp is worth a log line, never a failure
            self._written.pop(name, None)
            LOG.warning("could not record the last access of %s", name, exc_info=True)

    async def drain(self, timeout: float = SHUTDOWN_WAIT) -> None:
        """Wait (bounded) for the writes still running."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d")


async def last_access(db: RegistryDatabase) -> AsyncIterator[tuple[str, float]]:
    """(package name, epoch of its last recorded access) for every recorded name."""
    async for name, item in db.query(ACCESS_PK):
        try:
            yield name, float(item["at"])
        except (KeyError, TypeError, ValueError):
            LOG.warning("ignoring a malformed access record for %s", name)
