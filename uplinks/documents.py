"""Mirrored packuments as the mirror sees them, and what it needs of the registry's packages.

A mirrored packument lives in the package store at the same key as a local
one, marked with a `_tarhold` field naming the uplink and its validators. The
helpers here read that mark; the registry's domain imports them from here, so
the uplinks never import the registry.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from storage.base import PackageStore
from storage.heap import TRIM_AFTER_BYTES, loads_handed, trimmed

from .base import UplinkError

MIRROR_MARK = "_tarhold"  # uplinks.mirror marks mirrored documents with it


def is_mirrored(doc: dict[str, Any]) -> bool:
    """A copy of an uplink's document (never a package published here)."""
    mark = doc.get(MIRROR_MARK)
    return isinstance(mark, dict) and "uplink" in mark


def is_tombstone(doc: dict[str, Any]) -> bool:
    """A fully unpublished package: its history is kept so versions are never reused."""
    return not doc.get("versions") and "unpublished" in doc.get("time", {})


def dist_for(doc: dict[str, Any], filename: str) -> dict[str, Any] | None:
    """The `dist` of the version whose tarball is `filename`."""
    short = doc.get("name", "").split("/")[-1]
    for version, manifest in (doc.get("versions") or {}).items():
        if not isinstance(manifest, dict):
            continue
        dist = manifest.get("dist")
        if not isinstance(dist, dict):
            continue
        url = str(dist.get("tarball", ""))
        if url.rsplit("/", 1)[-1] == filename or f"{short}-{version}.tgz" == filename:
            return dist
    return None


@dataclass(frozen=True)
class Current:
    doc: dict[str, Any]
    token: str
    size: int = 0  # bytes of the stored JSON, when known


@dataclass(frozen=True)
class Freshness:
    """When the mirror last heard from the uplink about a stored packument."""

    token: str
    checked: float  # monotonic time of the last answer from the uplink
    maxage: float


class HeldTarballs(Protocol):
    """The registry's small tarballs in memory (`registry.domain.caches.TarballCache`)."""

    def fits(self, size: int) -> bool:
        """Whether a tarball of `size` bytes is held in memory."""

    async def hold_stored(self, store: PackageStore, name: str, filename: str, body: bytes) -> None:
        """Hold `body`, the tarball just stored under that name, with the etag storage gives it."""


class MirroredPackages(Protocol):
    """What the mirror asks of the registry's packages (`registry.domain.packages.Packages`)."""

    @property
    def store(self) -> PackageStore:
        """The package store mirrored packuments and tarballs are written to."""

    @property
    def tarballs(self) -> HeldTarballs:
        """Where a small tarball just mirrored is handed whole, so the next GET needs no storage read."""

    async def read(self, name: str, *, cached: bool = False) -> Current | None:
        """The stored document of `name`, or None; `cached`: may answer from memory."""

    async def changed(self, name: str, current: Current, old: dict[str, Any] | None) -> None:
        """`current` was just written for `name`: drop what was derived from the old document."""


# Parsed and serialized off the event loop from this size (or version count) up.
LARGE_DOCUMENT = 256 * 1024


async def loads_document(data: bytes) -> Any:
    """Parse an uplink's packument, off the event loop when it is large; UplinkError when not JSON.

    Hand the bytes over (keep no reference): a multi-MB document is decoded to
    text and its bytes dropped before the parse, and the text is gone with it,
    so neither is held with the parsed document.
    """
    try:
        if len(data) >= TRIM_AFTER_BYTES:
            box = [data.decode()]
            del data
            return await asyncio.to_thread(loads_handed, box)
        if len(data) > LARGE_DOCUMENT:
            return await asyncio.to_thread(orjson.loads, data)
        return orjson.loads(data)
    except ValueError as exc:  # orjson.JSONDecodeError, and UnicodeDecodeError, are ValueErrors
        raise UplinkError(f"not JSON: {exc}") from None


async def dumps_document(doc: dict[str, Any]) -> bytes:
    """Serialize a packument to store, off the event loop when it has many versions;
    UplinkError for what JSON cannot carry (a lone surrogate `loads_text` let through)."""
    try:
        if len(doc.get("versions", {})) > 2000:
            return await asyncio.to_thread(trimmed, orjson.dumps, doc)
        if len(doc.get("versions", {})) > 200:
            return await asyncio.to_thread(orjson.dumps, doc)
        return orjson.dumps(doc)
    except orjson.JSONEncodeError as exc:
        raise UplinkError(f"cannot be stored as JSON: {exc}") from None
