"""One writer per package: concurrent changes to a packument merge into one write.

A release pipeline publishes many versions of one package at once. If each
request read, changed and conditionally wrote the packument on its own,
sixteen of them would lose to each other over and over (one wins per round)
and the last ones would give up. Here each process keeps one queue per
package name: the changes that arrive while a write is under way wait, and
the next write applies all of them, in arrival order, to one fresh read. A
change its function refuses (it raises) fails alone; the others still land.

Between processes (workers, instances) the conditional write still decides:
a write that loses re-reads and applies its changes again, after a
jittered exponential backoff, until a deadline rather than for a fixed
number of attempts, so many writers converge instead of giving up early.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from registry.domain.errors import ServiceUnavailable
from storage.base import Conflict
from uplinks.documents import Current

LOG = logging.getLogger(__name__)

Doc = dict[str, Any]
Change = Callable[[Doc | None], Doc]
# (stored document, the document this change was applied to)
Outcome = tuple[Doc, Doc | None]

DEADLINE = 30.0  # seconds a change may keep losing before it answers 503
FIRST_BACKOFF = 0.01
MAX_BACKOFF = 0.5
MAX_BATCH = 256  # changes one write carries at most


@dataclass
class Queued:
    fn: Change
    future: asyncio.Future[Outcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    taken: bool = False  # a write carries it: its outcome is no longer the caller's to cancel


class ChangeQueue:
    """Merges concurrent changes to one name into single conditional writes.

    `read(name)` gives the stored document (never a cached one), `write(name,
    data, current)` writes under the condition of `current` (raising
    Conflict when it lost), `changed(name, current, old)` tells the caller's
    caches about a landed write.
    """

    def __init__(
        self,
        read: Callable[[str], Awaitable[Current | None]],
        write: Callable[[str, Doc, Current | None], Awaitable[Current]],
        changed: Callable[[str, Current, Doc | None], Awaitable[None]],
        deadline: float = DEADLINE,
    ) -> None:
        self.read, self.write, self.changed = read, write, changed
        self.deadline = deadline
        self.conflicts = 0  # lost conditional writes that were retried
        self.merged = 0  # changes that shared a write with an earlier one
        self._waiting: dict[str, list[Queued]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def submit(self, name: str, fn: Change) -> Outcome:
        """Apply `fn` to the stored document of `name`; (stored, before) once written.

        If the caller is cancelled before a write took the change, the change
        is withdrawn; after that, the caller waits for the write's outcome so
        it never cleans up after a change that then lands.
        """
        change = Queued(fn)
        self._waiting.setdefault(name, []).append(change)
        if name not in self._writers:
            self._writers[name] = asyncio.create_task(self._drain(name))
        try:
            return await asyncio.shield(change.future)
        except asyncio.CancelledError:
            if not change.taken:
                waiting = self._waiting.get(name, [])
                if change in waiting:
                    waiting.remove(change)
                raise
            await asyncio.wait([change.future])
            raise

    async def _drain(self, name: str) -> None:
        try:
            while True:
                waiting = self._waiting.pop(name, [])
                if not waiting:
                    return
                batch, rest = waiting[:MAX_BATCH], waiting[MAX_BATCH:]
                if rest:
                    self._waiting[name] = rest + self._waiting.get(name, [])
                for change in batch:
                    change.taken = True
                try:
                    await self._commit(name, batch)
                except asyncio.CancelledError:
                    for change in batch:
                        change.future.cancel()
                    raise
                except BaseException as exc:  # a bug, or an interrupt: no caller waits forever
                    if isinstance(exc, Exception):
                        LOG.exception("writing changes to %s", name)
                    for change in batch:
                        if not change.future.done():
                            change.future.set_exception(exc)
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        raise
        finally:
            del self._writers[name]
            for change in self._waiting.pop(name, []):  # (only when cancelled)
                change.future.cancel()

    async def _commit(self, name: str, batch: list[Queued]) -> None:
        deadline = time.monotonic() + self.deadline
        backoff = FIRST_BACKOFF
        tried: Attempt | None = None  # the last write that answered Conflict
        while True:
            try:
                current = await self.read(name)
            except Exception as exc:  # storage failed: every change of this write fails with it
                for change in batch:
                    change.future.set_exception(exc)
                return
            if tried is not None and current is not None and current.doc == tried.doc:
                # That write did land: its answer was lost and the retry of the
                # same request (botocore's) found its own write in the way.
                await self._landed(name, current, tried)
                return
            attempt = Attempt.of(batch, current)
            if not attempt.applied:
                break
            try:
                written = await self.write(name, attempt.doc, current)
            except Conflict:
                self.conflicts += 1
                tried = attempt
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    for change in batch:
                        change.future.set_exception(
                            ServiceUnavailable(f"too many concurrent changes to {name}; try again")
                        )
                    return
                pause = min(random.uniform(0, backoff), remaining)  # (a last try at the deadline)
                LOG.debug("conflict writing %s; again in %.3fs", name, pause)
                await asyncio.sleep(pause)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            except Exception as exc:  # storage failed: every change of this write fails with it
                for change, _ in attempt.applied:
                    change.future.set_exception(exc)
                attempt.applied.clear()
                break
            await self._landed(name, written, attempt)
            return
        for change, exc in attempt.refused:
            change.future.set_exception(exc)

    async def _landed(self, name: str, written: Current, attempt: Attempt) -> None:
        self.merged += len(attempt.applied) - 1
        try:
            await self.changed(name, written, attempt.old)
        except Exception:  # the write landed: its callers must hear so
            LOG.exception("after writing %s", name)
        for change, before in attempt.applied:
            change.future.set_result((written.doc, before))
        for change, exc in attempt.refused:
            change.future.set_exception(exc)


@dataclass
class Attempt:
    """A batch applied to one read: the document to write, and each change's part in it."""

    old: Doc | None
    doc: Doc | None
    applied: list[tuple[Queued, Doc | None]]  # change, the document it was applied to
    refused: list[tuple[Queued, Exception]]

    @classmethod
    def of(cls, batch: list[Queued], current: Current | None) -> Attempt:
        old = current.doc if current is not None else None
        attempt = cls(old, old, [], [])
        for change in batch:
            try:
                after = change.fn(attempt.doc)
            except Exception as exc:  # refused: this change fails alone
                attempt.refused.append((change, exc))
                continue
            attempt.applied.append((change, attempt.doc))
            attempt.doc = after
        return attempt
