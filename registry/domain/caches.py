"""Bounded in-process caches of bytes: hot small tarballs, and a weighted put.

Every worker process keeps its own caches; nothing here is shared. What
keeps them correct across workers and instances is time: an entry older
than `cache.packument_ttl` is revalidated against storage before it is
served again (see `TarballCache`, and `Packages.read` for packuments).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cachetools import Cache, LRUCache

from storage.base import PackageStore, StorageError
from storage.options import parse_duration, parse_section, parse_size

LOG = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class ReleasingCache(LRUCache[K, V]):
    """An LRU cache that hands every value it lets go of (evicted, removed or
    replaced) to `release`: for values that own something besides memory."""

    def __init__(self, maxsize: int, getsizeof: Callable[[V], int], release: Callable[[V], None]) -> None:
        super().__init__(maxsize, getsizeof=getsizeof)
        self._release = release

    def __setitem__(self, key: K, value: V) -> None:
        old = self.get(key)
        super().__setitem__(key, value)
        if old is not None and old is not value:
            self._release(old)

    def __delitem__(self, key: K) -> None:
        value = Cache.__getitem__(self, key)
        super().__delitem__(key)
        self._release(value)

    def clear(self) -> None:
        values = list(self.values())
        super().clear()
        for value in values:
            self._release(value)


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

    async def hold_stored(self, store: PackageStore, name: str, filename: str, body: bytes) -> None:
        """Hold `body`, a tarball just stored (the mirror's), with the etag storage gives it:
        the next GET is served from memory, not read back from storage."""
        if not self.fits(len(body)):
            return
        try:
            info = await store.stat_tarball(name, filename)
        except StorageError as exc:  # gone again, or storage failing: the next GET reads it
            LOG.debug("not holding %s/%s: %s", name, filename, exc)
            return
        if info.size == len(body):
            self.put(name, filename, body, info.etag)

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


@dataclass(frozen=True)
class CacheConfig:
    """In-process caches; every instance (and worker) keeps its own."""

    # How long a worker serves a packument from memory before it reads storage
    # again: the longest a publish on one instance stays invisible on another.
    packument_ttl: float = 2.0
    # Small, hot tarballs kept in memory (bytes in all, and the largest kept;
    # 0 turns it off). One held longer than packument_ttl is checked against
    # storage (a stat, or an S3 HEAD) before it is served again, so an
    # unpublish on another worker or instance is seen within the TTL too.
    tarball_memory: int = 64 * 1024 * 1024
    tarball_max_size: int = 1024 * 1024
    # Packument bytes ready to send (full and abbreviated, each with its gzip),
    # built once per document and base URL: a GET of a held one only sends them.
    # Those of a document over 4 MB are kept in a temporary file (read back a
    # slice at a time when sent), not in memory; they count here all the same.
    packument_memory: int = 48 * 1024 * 1024
    # Parsed packuments, counted as 4x their JSON (what Python objects take): a
    # read within packument_ttl, and a revalidation that finds the document
    # unchanged, need no parse. One larger than parsed_max_size (JSON) is kept
    # only while it is used (a few seconds after its last read): a 20 MB
    # document is 80-90 MB parsed, and serving its bytes needs no parsed copy.
    parsed_memory: int = 96 * 1024 * 1024
    parsed_max_size: int = 4 * 1024 * 1024


CACHE_KEYS = {
    "packument_ttl", "tarball_memory", "tarball_max_size", "packument_memory", "parsed_memory", "parsed_max_size",
}


def parse_cache(raw: Any) -> CacheConfig:
    raw = parse_section("cache", raw, CACHE_KEYS)
    defaults = CacheConfig()

    def size(key: str) -> int:
        return _size_or_zero(f"cache.{key}", raw.get(key, getattr(defaults, key)))

    return CacheConfig(
        packument_ttl=parse_duration("cache.packument_ttl", raw.get("packument_ttl", defaults.packument_ttl)),
        tarball_memory=size("tarball_memory"),
        tarball_max_size=size("tarball_max_size"),
        packument_memory=size("packument_memory"),
        parsed_memory=size("parsed_memory"),
        parsed_max_size=size("parsed_max_size"),
    )


def _size_or_zero(key: str, value: Any) -> int:
    """A size, where 0 (or "0") turns the cache off."""
    if value in (0, "0"):
        return 0
    return parse_size(key, value)
