"""Local packages: reading, rendering and every change to a packument.

Every change goes through `update_packument(name, fn)`: read, apply a pure
function, write with the token read, and on `Conflict` read and apply again.
Handlers stay thin; this module is testable without HTTP.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from cachetools import LRUCache

from storage.base import Conflict, NotFound, PackageStore, RegistryDatabase

from .errors import ConflictError, ServiceUnavailable, error_for_status
from .packument import PublishError
from .views import abbreviate, rewrite_tarball_urls

LOG = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
RENDER_CACHE_BYTES = 64 * 1024 * 1024
PARSED_CACHE_ENTRIES = 256
GZIP_MIN_BYTES = 1024

FULL = "application/json"
MIRROR_MARK = "_tarhold"  # uplinks.mirror marks mirrored documents with it
ABBREVIATED = "application/vnd.npm.install-v1+json"


def now_iso() -> str:
    """Timestamps as the npm registry writes them: UTC with milliseconds and Z."""
    moment = datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def revision(token: str, doc: dict[str, Any]) -> str:
    """A CouchDB-style `_rev` derived from the stored version token."""
    return f"{len(doc.get('time', {}))}-{hashlib.sha1(token.encode()).hexdigest()[:16]}"


def is_mirrored(doc: dict[str, Any]) -> bool:
    """A copy of an uplink's document (never a package published here)."""
    mark = doc.get(MIRROR_MARK)
    return isinstance(mark, dict) and "uplink" in mark


def is_tombstone(doc: dict[str, Any]) -> bool:
    """A fully unpublished package: its history is kept so versions are never reused."""
    return not doc.get("versions") and "unpublished" in doc.get("time", {})


@dataclass(frozen=True)
class Rendered:
    """The bytes of one variant of a packument, built once, served many times."""

    body: bytes
    etag: str
    gzipped: bytes | None = None


@dataclass(frozen=True)
class Current:
    doc: dict[str, Any]
    token: str


def as_registry_error(exc: PublishError) -> Exception:
    return error_for_status(exc.status, exc.message)


class Packages:
    """Local packuments on a PackageStore, with the package list in the database."""

    def __init__(self, store: PackageStore, db: RegistryDatabase) -> None:
        self.store = store
        self.db = db
        self.conflicts = 0  # lost conditional writes that were retried
        # Parsed documents by (name, token): a token names exact bytes, so an
        # entry is never stale, only unused.
        self._parsed: LRUCache[tuple[str, str], dict[str, Any]] = LRUCache(PARSED_CACHE_ENTRIES)
        self._rendered: LRUCache[tuple[str, str, str, str], Rendered] = LRUCache(
            RENDER_CACHE_BYTES, getsizeof=lambda r: len(r.body) + len(r.gzipped or b"")
        )

    # -- reading --------------------------------------------------------------

    async def read(self, name: str) -> Current | None:
        """The stored packument (tombstones included), or None."""
        try:
            stored = await self.store.read_packument(name)
        except NotFound:
            return None
        key = (name, stored.token)
        doc = self._parsed.get(key)
        if doc is None:
            doc = await _loads(stored.data)
            self._parsed[key] = doc
        return Current(doc, stored.token)

    def cached_doc(self, name: str, token: str) -> dict[str, Any] | None:
        """The parsed document for a token this process has seen, without I/O."""
        return self._parsed.get((name, token))

    def remember(self, name: str, token: str, doc: dict[str, Any]) -> None:
        self._parsed[(name, token)] = doc

    async def read_live(self, name: str) -> Current | None:
        """The packument, or None for a missing or fully unpublished package."""
        current = await self.read(name)
        if current is None or is_tombstone(current.doc):
            return None
        return current

    def render(self, name: str, current: Current, base: str, variant: str) -> Rendered:
        """Full or abbreviated bytes with tarball URLs on `base`; cached per token."""
        key = (name, current.token, base, variant)
        rendered = self._rendered.get(key)
        if rendered is None:
            doc = rewrite_tarball_urls(current.doc, base)
            doc.pop(MIRROR_MARK, None)
            if variant == ABBREVIATED:
                doc = abbreviate(doc)
            else:
                doc = {**doc, "_rev": revision(current.token, current.doc)}
            body = orjson.dumps(doc)
            digest = hashlib.sha256(body).hexdigest()[:32]
            gzipped = gzip.compress(body, 6) if len(body) >= GZIP_MIN_BYTES else None
            rendered = Rendered(body, f'"{digest}"', gzipped)
            self._rendered[key] = rendered
        return rendered

    # -- writing --------------------------------------------------------------

    async def update_packument(
        self,
        name: str,
        fn: Callable[[dict[str, Any] | None], dict[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Read → fn → conditional write, retried on Conflict; returns (new, old).

        `fn` receives the current document (None when there is none) and
        returns the new one; it raises to refuse the change. It may run more
        than once, so it must be pure.
        """
        for attempt in range(MAX_ATTEMPTS):
            current = await self.read(name)
            old = current.doc if current else None
            new = fn(old)
            data = orjson.dumps(new)
            try:
                if current is None:
                    token = await self.store.write_packument(name, data, if_absent=True)
                else:
                    token = await self.store.write_packument(name, data, if_match=current.token)
            except Conflict:
                # Someone else wrote first: back off a little, re-read, re-apply.
                self.conflicts += 1
                LOG.debug("conflict writing %s (attempt %d); re-reading", name, attempt + 1)
                await asyncio.sleep(random.uniform(0, 0.02 * (attempt + 1)))
                continue
            self._parsed[(name, token)] = new
            return new, old
        raise ServiceUnavailable(f"too many concurrent changes to {name}; try again")

    async def record_package(self, doc: dict[str, Any]) -> None:
        """Keep the package list entry (search reads it) in step with the packument."""
        name = doc["name"]
        if is_tombstone(doc):
            try:
                await self.db.delete("PACKAGE", name)
            except NotFound:
                pass
            return
        latest = doc.get("dist-tags", {}).get("latest")
        manifest = doc.get("versions", {}).get(latest, {}) if latest else {}
        entry = {
            "name": name,
            "local": True,
            "version": latest,
            "description": manifest.get("description", doc.get("description", "")),
            "keywords": manifest.get("keywords", doc.get("keywords", [])) or [],
            "maintainers": doc.get("maintainers", []),
            "created": doc.get("time", {}).get("created"),
            "modified": doc.get("time", {}).get("modified"),
            "date": doc.get("time", {}).get(latest) if latest else None,
            "links": {k: v for k, v in {
                "homepage": manifest.get("homepage"),
                "repository": _repository_url(manifest.get("repository")),
                "bugs": (manifest.get("bugs") or {}).get("url")
                if isinstance(manifest.get("bugs"), dict) else manifest.get("bugs"),
            }.items() if isinstance(v, str)},
            "publisher": manifest.get("_npmUser"),
        }
        await self.db.put("PACKAGE", name, entry)

    async def reserve_version(self, name: str, version: str) -> None:
        """Only one request at a time may publish a given version (any instance)."""
        try:
            await self.db.put(
                f"PUBLISH#{name}", version, {"started": now_iso()},
                if_absent=True, expires=int(time.time()) + 600,
            )
        except Conflict:
            raise ConflictError(
                f"{name}@{version} is being published by another request"
            ) from None

    async def release_version(self, name: str, version: str) -> None:
        try:
            await self.db.delete(f"PUBLISH#{name}", version)
        except NotFound:
            pass


def _repository_url(repository: Any) -> str | None:
    if isinstance(repository, dict):
        url = repository.get("url")
        return url if isinstance(url, str) else None
    return repository if isinstance(repository, str) else None


async def _loads(data: bytes) -> dict[str, Any]:
    # Multi-MB documents are parsed off the event loop.
    if len(data) > 256 * 1024:
        return await asyncio.to_thread(orjson.loads, data)
    return orjson.loads(data)
