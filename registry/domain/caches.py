"""Bounded in-process caches of bytes: hot small tarballs, and a weighted put.

Every worker process keeps its own caches; nothing here is shared. What
keeps them correct across workers and instances is time: an entry older
than `cache.packument_ttl` is revalidated against storage before it is
served again (see `TarballCache`, and `Packages.read` for packuments).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cachetools import Cache, LRUCache

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")

# Work on a JSON document at least this large is followed by a heap trim.
TRIM_AFTER_BYTES = 4 * 1024 * 1024


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc: nothing to trim with
        return None


MALLOC_TRIM = _malloc_trim()


def trimmed(fn: Callable[..., R], *args: Any) -> R:
    """`fn(*args)`, then hand the heap it freed back to the OS.

    Parsing and rendering a multi-MB packument makes and drops hundreds of MB
    of short-lived objects; glibc keeps that memory in the process unless
    asked, so the resident size would stay at its high-water mark. Meant for
    worker threads (asyncio.to_thread), since a trim takes milliseconds.
    """
    try:
        return fn(*args)
    finally:
        if MALLOC_TRIM is not None:
            MALLOC_TRIM(0)


def put_bounded(cache: Cache[K, V], key: K, value: V) -> bool:
    """Store `value` unless it alone outweighs the cache; True when stored."""
    try:
        cache[key] = value
    except ValueError:  # cachetools: "value too large"
        cache.pop(key, None)
        return False
    return True


@dataclass
class HeldTarball:
    """A whole small tarball in memory, with the etag storage gave it."""

    body: bytes
    etag: str
    checked: float  # monotonic time storage last confirmed it


class TarballCache:
    """Small hot tarballs, bounded by total bytes and by the size of one.

    A tarball's bytes never change under its file name (a version is never
    published twice), so the only staleness is a deletion (unpublish). A
    deletion on this process forgets the entry at once (`forget`); one on
    another worker or instance is noticed when the entry is older than `ttl`:
    the caller then asks storage for the tarball's etag (a stat on disk, a
    HEAD on S3) before serving it again.
    """

    def __init__(self, total: int, max_item: int, ttl: float) -> None:
        self.max_item = max_item if total > 0 else 0
        self.ttl = ttl
        self._held: LRUCache[tuple[str, str], HeldTarball] = LRUCache(
            max(total, 1), getsizeof=lambda held: len(held.body) or 1
        )

    @property
    def enabled(self) -> bool:
        return self.max_item > 0

    def fits(self, size: int) -> bool:
        return 0 < size <= self.max_item

    def get(self, name: str, filename: str) -> HeldTarball | None:
        """The held tarball, fresh or not (see `is_fresh`)."""
        if not self.max_item:
            return None
        return self._held.get((name, filename))

    def is_fresh(self, held: HeldTarball) -> bool:
        return time.monotonic() - held.checked < self.ttl

    def confirm(self, held: HeldTarball) -> None:
        held.checked = time.monotonic()

    def put(self, name: str, filename: str, body: bytes, etag: str) -> None:
        if self.fits(len(body)):
            put_bounded(self._held, (name, filename), HeldTarball(body, etag, time.monotonic()))

    def forget(self, name: str, filename: str | None = None) -> None:
        """Drop one tarball, or every tarball of `name`."""
        if filename is not None:
            self._held.pop((name, filename), None)
            return
        for key in [k for k in self._held if k[0] == name]:
            self._held.pop(key, None)

    @property
    def size(self) -> int:
        return int(self._held.currsize) if self.max_item else 0

    def __len__(self) -> int:
        return len(self._held)


def weight_of(*parts: Any) -> int:
    """Bytes held by the bytes-like parts (None counts nothing)."""
    return sum(len(p) for p in parts if p is not None)
