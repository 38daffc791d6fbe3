"""Mirroring a tarball: one upstream fetch, streamed to every waiting client and
into storage at once, verified before the stored copy becomes visible.

The fetch writes each chunk to a spool file and to the package store; clients
follow the spool file as it grows, so any number of them share one upstream
request with memory bounded by a chunk each. Length and integrity are checked
at the end of the stream: on a mismatch the storage write is aborted (nothing
becomes visible) and every client's response is cut off, never completed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from storage.base import PackageStore

from .base import Uplink, UplinkError

LOG = logging.getLogger(__name__)

CHUNK = 256 * 1024


class IntegrityError(UplinkError):
    """The bytes the uplink sent do not match what the packument declares."""


@dataclass(frozen=True)
class Expected:
    """What the packument says the tarball is."""

    integrity: str | None  # "sha512-..." (or another algorithm) from dist.integrity
    shasum: str | None  # sha1 hex from dist.shasum

    @classmethod
    def from_dist(cls, dist: dict[str, Any]) -> Expected:
        integrity = dist.get("integrity")
        shasum = dist.get("shasum")
        return cls(integrity if isinstance(integrity, str) else None,
                   shasum if isinstance(shasum, str) else None)

    def hashers(self) -> list[tuple[Any, str, str]]:
        """(hasher, expected digest, encoding) pairs for every check we can make."""
        checks = []
        for entry in (self.integrity or "").split():
            algorithm, _, digest = entry.partition("-")
            if algorithm in {"sha512", "sha384", "sha256", "sha1"} and digest:
                checks.append((hashlib.new(algorithm), digest, "base64"))
        if not any(c[0].name == "sha1" for c in checks) and self.shasum:
            checks.append((hashlib.sha1(), self.shasum.lower(), "hex"))
        return checks


class Download:
    """One upstream fetch of one tarball, followed by any number of clients."""

    def __init__(self, name: str, filename: str) -> None:
        self.name = name
        self.filename = filename
        # Unlinked from the start (O_TMPFILE where the system has it): a process
        # killed mid-fetch leaves no spool file behind. Followers read it with
        # pread on the same descriptor, which leaves the writer's position alone.
        # It closes when the last reference to this Download goes (the mirror
        # forgets it once the fetch ended, each follower once it read it all),
        # so a follower that joins just as the fetch ends still finds it open.
        self._out = tempfile.TemporaryFile(prefix="tarhold-tee-", suffix=".tgz", buffering=0)
        self.size: int | None = None
        self.written = 0
        self.started = asyncio.Event()
        self.done = False
        self.error: BaseException | None = None
        self._changed = asyncio.Condition()

    async def run(
        self, uplink: Uplink, url: str, expected: Expected, store: PackageStore | None, via: str
    ) -> int:
        """Fetch, spool, verify and (when `store` is given) store; returns bytes fetched."""
        try:
            tarball = await uplink.open_tarball(url, via=via)
        except BaseException as exc:
            await self._finish(exc)
            raise
        self.size = tarball.size
        self.started.set()
        checks = expected.hashers()

        async def verified_chunks() -> AsyncIterator[bytes]:
            async for chunk in tarball.chunks():
                for hasher, _, _ in checks:
                    hasher.update(chunk)
                self._out.write(chunk)
                self.written += len(chunk)
                await self._notify()
                yield chunk
            if self.size is not None and self.written != self.size:
                raise UplinkError(f"{self.filename}: got {self.written} of {self.size} bytes")
            for hasher, digest, encoding in checks:
                actual = (base64.b64encode(hasher.digest()).decode() if encoding == "base64"
                          else hasher.hexdigest())
                if actual != digest:
                    raise IntegrityError(
                        f"{self.name}/{self.filename} does not match its {hasher.name} integrity"
                    )

        try:
            if store is not None:
                await store.write_tarball(self.name, self.filename, verified_chunks())
            else:
                async for _ in verified_chunks():
                    pass
        except BaseException as exc:
            await self._finish(exc)
            raise
        finally:
            await tarball.aclose()
        await self._finish(None)
        return self.written

    def body(self) -> bytes:
        """The whole tarball, read back from the spool (once the fetch ended without error)."""
        return os.pread(self._out.fileno(), self.written, 0)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _finish(self, error: BaseException | None) -> None:
        self.error = error
        self.done = True
        self.started.set()
        await self._notify()

    def follow(self) -> AsyncIterator[bytes]:
        """The tarball's bytes as they arrive; raises if the fetch fails or lies.

        The spool stays open while the returned iterator is referenced.
        """
        return self._follow()

    async def _follow(self) -> AsyncIterator[bytes]:
        await self.started.wait()
        if self.error is not None and self.written == 0:
            raise self.error
        spool = self._out.fileno()
        offset = 0
        while True:
            if self.done and self.error is not None:
                raise self.error
            # The last byte waits for the verdict: with a known length,
            # sending it would hand the client a complete-looking body
            # before the integrity check has passed.
            limit = self.written if self.done else self.written - 1
            if offset < limit:
                chunk = os.pread(spool, min(CHUNK, limit - offset), offset)
                offset += len(chunk)
                yield chunk
                continue
            if self.done:
                return
            async with self._changed:
                if not self.done and offset >= self.written - 1:
                    await self._changed.wait()
