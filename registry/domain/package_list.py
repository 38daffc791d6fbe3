"""The package list (`PACKAGE`/{name} items) and this process's index of it, kept current
on every instance.

A change (`record`) writes the package's entry, then appends the name to a change
log: `CONFIG`/`PACKAGESEQ` is a counter (its `ver` goes up by one on every
write, atomically on both backends) and `PACKAGELOG`/{seq} names the package
that change touched, expiring after an hour. The writer applies the change to
its own index at once. Every process reads the counter every POLL_SECONDS
(one small item, as the policy and org stamps are read); when it moved, it
reads the log items since its last one (by blocks of 100 keys) and the entries
they name, so a change made on another instance is findable within
POLL_SECONDS plus one read: about 2 s. The index is built from the whole list
when the process starts, and again when it fell too far behind (more than
MAX_BEHIND changes, or a log item that never appeared: its writer died between
the counter and the log).

The log carries names only: the entry is read back from the list, so an
instance always ends with what the list holds, whichever of two concurrent
writers wrote it last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from cachetools import LRUCache

from registry.domain.clock import now_iso
from registry.domain.package_index import PackageIndex
from registry.domain.package_ranking import Ranking, Sight
from registry.domain.summaries import clean_entry
from storage.base import NotFound, RegistryDatabase, StorageError

LOG = logging.getLogger(__name__)

LIST_PK = "PACKAGE"
SEQ_PK, SEQ_SK = "CONFIG", "PACKAGESEQ"
LOG_PK = "PACKAGELOG"
LOG_SECONDS = 3600
POLL_SECONDS = 2.0
BLOCK_DIGITS = 2  # log keys are read 10**BLOCK_DIGITS at a time (one sk prefix)
KEY_DIGITS = 12
MAX_BEHIND = 2_000  # more changes than this since the last poll: read the whole list again
GAP_PATIENCE = 30.0  # seconds a missing log item is waited for
ENTRY_CACHE = 2_048  # full entries of result pages, until the package changes


def log_key(seq: int) -> str:
    return f"{seq:0{KEY_DIGITS}d}"


class PackageList:
    """The package list in the database, and its index in this process (`load` builds it)."""

    def __init__(self, db: RegistryDatabase, classify: Callable[[str], int] | None = None) -> None:
        self.db = db
        self.classify = classify
        self.index: PackageIndex | None = None  # None until loaded: a CLI keeps no index
        self.seen = 0  # the last change of the log this index holds
        self.poll_seconds = POLL_SECONDS
        self._entries: LRUCache[str, dict[str, Any]] = LRUCache(ENTRY_CACHE)
        self._touched: dict[str, float] = {}  # name -> when this process last changed it
        self._during_load: dict[str, dict[str, Any] | None] | None = None
        self._ahead: set[int] = set()  # log items past a gap, already applied
        self._gap_since: float | None = None
        self._applied = 0  # changes applied: a read that overlapped one is not cached

    # -- writing ----------------------------------------------------------------------

    async def record(self, name: str, entry: dict[str, Any] | None) -> None:
        """Store package `name`'s entry (None: remove it), apply it here, and log the change."""
        if entry is None:
            try:
                await self.db.delete(LIST_PK, name)
            except NotFound:
                pass
        else:
            await self.db.put(LIST_PK, name, entry)
        self._touched[name] = time.monotonic()
        self._apply(name, entry)
        if self._during_load is not None:
            self._during_load[name] = entry
        seq = await self.db.put(SEQ_PK, SEQ_SK, {"name": name, "changed": now_iso()})
        await self.db.put(LOG_PK, log_key(seq), {"name": name}, expires=int(time.time()) + LOG_SECONDS)

    def _apply(self, name: str, entry: dict[str, Any] | None) -> None:
        self._applied += 1
        self._entries.pop(name, None)
        if self.index is None:
            return
        if entry is None:
            self.index.remove(name)
        else:
            self.index.put(name, clean_entry(entry, name))

    # -- reading ----------------------------------------------------------------------

    def search(self, words: list[str], scope: str | None, sight: Sight) -> Ranking:
        return self._loaded().search(words, scope, sight)

    def recent(self, sight: Sight) -> Iterable[str]:
        return self._loaded().recent(sight)

    def _loaded(self) -> PackageIndex:
        if self.index is None:
            raise RuntimeError("the package list is not loaded")
        return self.index

    async def entries(self, names: list[str]) -> list[dict[str, Any]]:
        """The full entries of `names`, in order (one batch read for those not held); a name
        no longer listed is left out."""
        found: dict[str, dict[str, Any]] = {}
        missing = [name for name in dict.fromkeys(names) if name not in self._entries]
        if missing:
            applied = self._applied
            read = await self.db.get_many(LIST_PK, missing)
            current = self._applied == applied  # no change landed during the read
            for name in missing:
                if name in read:
                    found[name] = clean_entry(read[name], name)
                    if current:
                        self._entries[name] = found[name]
                elif current and self.index is not None:
                    self.index.remove(name)  # gone from the list: the log will say so too
        return [entry for name in names if (entry := found.get(name) or self._entries.get(name)) is not None]

    # -- keeping current --------------------------------------------------------------

    async def head(self) -> int:
        """The number of the last change logged (0: none yet)."""
        try:
            return int((await self.db.get(SEQ_PK, SEQ_SK))["ver"])
        except NotFound:
            return 0

    async def load(self) -> None:
        """Build the index from the whole list (the changes logged meanwhile follow by `refresh`)."""
        started = time.monotonic()
        self._during_load = {}
        try:
            head = await self.head()
            index = PackageIndex(self.classify)
            async for name, raw in self.db.query(LIST_PK):
                index.put(name, clean_entry(raw, name))
            for name, entry in self._during_load.items():
                if entry is None:
                    index.remove(name)
                else:
                    index.put(name, clean_entry(entry, name))
        finally:
            self._during_load = None
        self.index, self.seen = index, head
        self._entries.clear()
        self._ahead.clear()
        self._gap_since = None
        LOG.info("package list loaded: %d packages in %.1f s", len(index), time.monotonic() - started)

    async def refresh(self) -> None:
        """Apply the changes logged since the last one this index holds."""
        head = await self.head()
        if head == self.seen:
            return
        if head < self.seen or head - self.seen > MAX_BEHIND:
            LOG.info("package list: %d changes since the last poll; reading it whole", head - self.seen)
            await self.load()
            return
        started = time.monotonic()
        found: dict[int, str] = {}
        first, last = (self.seen + 1) // 10**BLOCK_DIGITS, head // 10**BLOCK_DIGITS
        for block in range(first, last + 1):
            prefix = f"{block:0{KEY_DIGITS - BLOCK_DIGITS}d}"
            async for key, item in self.db.query(LOG_PK, prefix):
                seq = int(key) if key.isdigit() else -1
                if self.seen < seq <= head and isinstance(item.get("name"), str):
                    found[seq] = item["name"]
        upto = self.seen
        while upto + 1 in found:
            upto += 1
        if upto < head:
            now = time.monotonic()
            self._gap_since = self._gap_since or now
            if now - self._gap_since > GAP_PATIENCE:
                LOG.warning("package list: change %d never appeared in the log; reading the list whole", upto + 1)
                await self.load()
                return
        else:
            self._gap_since = None
        fresh = {name for seq, name in found.items() if seq not in self._ahead}
        await self._read_back(fresh, started)
        self._ahead = {seq for seq in self._ahead | set(found) if seq > upto}
        self.seen = upto
        self._forget_touched(started)

    async def _read_back(self, names: set[str], started: float) -> None:
        read = await self.db.get_many(LIST_PK, sorted(names)) if names else {}
        for name in sorted(names):
            if self._touched.get(name, 0.0) > started:
                continue  # changed here after that read: what this process applied is newer
            self._apply(name, clean_entry(read[name], name) if name in read else None)

    def _forget_touched(self, before: float) -> None:
        horizon = before - 10 * self.poll_seconds
        for name in [name for name, when in self._touched.items() if when < horizon]:
            del self._touched[name]

    async def watch(self) -> None:
        """Poll for changes made elsewhere, every `poll_seconds`, until cancelled."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.refresh()
            except StorageError as exc:
                LOG.warning("could not check the package list for changes: %s", exc)
            except Exception:  # never let the watch end: this instance would stop seeing changes
                LOG.exception("could not bring the package list up to date")
