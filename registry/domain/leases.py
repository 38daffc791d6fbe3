"""Short, renewed leases: one publisher of a version at a time, across instances.

A publish holds the lease on `(name, version)` from before it writes the
tarball until its packument change is written. The lease is an item in the
registry database that expires `LEASE_SECONDS` after its last renewal; the
holder renews it every `RENEW_EVERY` seconds while it works. So a publisher
that dies (kill -9, OOM) blocks the version for at most `LEASE_SECONDS`,
and less where its death can be seen: the item names its holder (host, PID
namespace, PID and the PID's start time), and a process that shares the
holder's host and PID namespace takes the lease over at once when that
process is gone. Anywhere else (another machine or container) the expiry
alone frees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.domain.clock import now_iso
from registry.domain.errors import ConflictError, ServiceUnavailable
from storage.base import Conflict, NotFound, RegistryDatabase, StorageError

LOG = logging.getLogger(__name__)

LEASE_SECONDS = 15
RENEW_EVERY = 5


@dataclass(frozen=True)
class Holder:
    """The process holding a lease, as far as another process can check it."""

    host: str  # hostname, boot id and PID namespace: where `pid` means this process
    pid: int
    started: str  # the PID's start time in clock ticks since boot ("" unknown)

    def as_item(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "started": self.started}

    @classmethod
    def from_item(cls, item: Any) -> Holder | None:
        if not isinstance(item, dict):
            return None
        host, pid, started = item.get("host"), item.get("pid"), item.get("started")
        if not (isinstance(host, str) and isinstance(pid, int) and isinstance(started, str)):
            return None
        return cls(host, pid, started)

    def is_gone(self) -> bool:
        """True only when this process can see the holder has exited."""
        if not self.started or self.host != this_process().host:
            return False  # another machine, container or unknown: only expiry frees it
        return process_started(self.pid) != self.started


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def process_started(pid: int) -> str:
    """The start time of process `pid` (field 22 of /proc/PID/stat), "" when there is none."""
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


_HOLDERS: dict[int, Holder] = {}


def this_process() -> Holder:
    """This process as a lease holder (recomputed after a fork: the PID changes)."""
    pid = os.getpid()
    holder = _HOLDERS.get(pid)
    if holder is None:
        try:
            namespace = os.readlink("/proc/self/ns/pid")
        except OSError:
            namespace = ""
        boot = _read("/proc/sys/kernel/random/boot_id")
        started = process_started(pid) if boot and namespace else ""
        holder = Holder(f"{socket.gethostname()}/{boot}/{namespace}", pid, started)
        _HOLDERS[pid] = holder
    return holder


class Lease:
    """`async with Lease(db, pk, sk, what)`: held inside the block, renewed meanwhile.

    Entering raises ConflictError while a live holder has it. `check()`
    raises ServiceUnavailable once a renewal found the lease gone (this
    process stalled past its expiry and someone may have taken it over),
    so the holder does not commit work another process may be redoing.
    """

    def __init__(self, db: RegistryDatabase, pk: str, sk: str, what: str) -> None:
        self.db, self.pk, self.sk, self.what = db, pk, sk, what
        self.ver = 0
        self.nonce = secrets.token_hex(8)  # `ver` alone is not ours: a new item starts at 1 again
        self.lost = False
        self._until = 0.0  # monotonic time the stored lease surely still holds until
        self._renewing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lease:
        await self._acquire()
        self._renewing = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
        if not self.lost:
            try:  # shielded: a cancelled request still frees the version
                await asyncio.shield(self._release())
            except (NotFound, Conflict):
                pass
            except StorageError:
                LOG.warning("could not release the lease on %s; it expires in %ss", self.what, LEASE_SECONDS)

    def check(self) -> None:
        if self.lost or time.monotonic() >= self._until:
            raise ServiceUnavailable(f"lost the lease on {self.what} (storage too slow); try again")

    def _item(self) -> dict[str, Any]:
        return {"started": now_iso(), "holder": this_process().as_item(), "nonce": self.nonce}

    async def _still_mine(self) -> None:
        """Raise Conflict unless the stored lease is the one this holder wrote."""
        item = await self.db.get(self.pk, self.sk)
        if item.get("nonce") != self.nonce or item["ver"] != self.ver:
            raise Conflict(f"the lease on {self.what} has another holder")

    async def _release(self) -> None:
        await self._still_mine()
        await self.db.delete(self.pk, self.sk, if_ver=self.ver)

    async def _put(self, **condition: Any) -> None:
        began = time.monotonic()
        self.ver = await self.db.put(self.pk, self.sk, self._item(), expires=_expiry(), **condition)
        self._until = began + LEASE_SECONDS - 1  # (the stored expiry is rounded down)

    async def _acquire(self) -> None:
        for _ in range(3):  # a lease freed (or taken over) between our two calls: ask again
            try:
                await self._put(if_absent=True)
                return
            except Conflict:
                pass
            try:
                item = await self.db.get(self.pk, self.sk)
            except NotFound:
                continue
            if self._adopted(item):
                return
            holder = Holder.from_item(item.get("holder"))
            if holder is None or not holder.is_gone():
                raise ConflictError(
                    f"{self.what} is being published by another request; try again in a few seconds"
                )
            LOG.warning("taking over the lease on %s: its holder (PID %d) is gone", self.what, holder.pid)
            try:
                await self.db.delete(self.pk, self.sk, if_ver=item["ver"])
            except (NotFound, Conflict):
                pass
        raise ConflictError(f"{self.what} is being published by another request; try again")

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self._still_mine()
                try:
                    await self._put(if_ver=self.ver)
                except Conflict:
                    if not self._adopted(await self.db.get(self.pk, self.sk)):
                        raise
            except (Conflict, NotFound):
                LOG.warning("the lease on %s was lost: a renewal found it taken", self.what)
                self.lost = True
                return
            except StorageError:
                LOG.warning("could not renew the lease on %s; trying again", self.what)

    def _adopted(self, item: dict[str, Any]) -> bool:
        """Whether `item` is this holder's own write whose answer was lost (the
        retry of the same request found it in the way); if so, hold it."""
        if item.get("nonce") != self.nonce:
            return False
        self.ver = item["ver"]
        self._until = time.monotonic() + LEASE_SECONDS - 2
        return True


def _expiry() -> int:
    return int(time.time()) + LEASE_SECONDS
