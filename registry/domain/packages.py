"""Local packages: reading, rendering and every change to a packument.

Every change goes through `update_packument(name, fn)`: read, apply a pure
function, write with the token read, and on `Conflict` read and apply again;
concurrent changes to one name share one such write (change_queue).
Handlers stay thin; this module is testable without HTTP.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cachetools import LRUCache, TTLCache

from registry.domain.caches import CacheConfig, TarballCache, put_bounded, weight_of
from registry.domain.change_queue import ChangeQueue
from registry.domain.leases import Lease
from registry.domain.mirror_policy import UNCHANGED, MirrorPolicy, View, shown_doc
from registry.domain.package_list import PackageList
from registry.domain.packument import tarball_file_of
from registry.domain.packument_views import abbreviate, rewrite_tarball_urls
from registry.domain.signing import SigningKey
from registry.domain.summaries import summary_of
from storage.base import NotFound, PackageStore, RegistryDatabase
from storage.heap import TRIM_AFTER_BYTES, trimmed
from uplinks.documents import MIRROR_MARK, Current, is_mirrored, is_tombstone

LOG = logging.getLogger(__name__)

# Both caches are weighted by bytes: the rendered variants by their own size,
# parsed documents by an estimate of their Python objects.
RENDER_CACHE_BYTES = 48 * 1024 * 1024
# Parsed JSON takes about this many times its size in Python objects (21 MB
# of JSON measured 87 MB): the budget holds ~24 MB of stored JSON, so the
# largest real packuments stay parsed. Not keeping them costs more: every
# variant and every TTL would parse the document again.
DOCUMENT_CACHE_BYTES = 96 * 1024 * 1024
PARSED_OVERHEAD = 4
SERVED_ENTRIES = 100_000
GZIP_MIN_BYTES = 1024
# Documents at least this large are parsed, rendered and gzipped in a thread.
LARGE_DOCUMENT = 256 * 1024
RECENT_BASES = 4
LOCATION_ENTRIES = 10_000

FULL = "application/json"
ABBREVIATED = "application/vnd.npm.install-v1+json"


def revision(token: str, doc: dict[str, Any]) -> str:
    """A CouchDB-style `_rev` derived from the stored version token."""
    return f"{len(doc.get('time', {}))}-{hashlib.sha1(token.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Rendered:
    """The bytes of one variant of a packument, built once, served many times."""

    body: bytes
    etag: str
    gzipped: bytes | None = None


@dataclass(frozen=True)
class Known:
    """What this process last read (or wrote) for a name, and when."""

    current: Current
    checked: float  # monotonic time storage last gave (or took) this document


class Packages:
    """Local packuments on a PackageStore, with the package list in the database.

    Reads go through a read-through cache: for `cache.packument_ttl` after
    storage last gave a document, `read` answers from memory, and `render`
    answers with bytes built once per (document, base URL, variant). A change
    made by this process replaces the entry at once; a change made by another
    worker or instance is seen once the entry is older than the TTL.
    """

    def __init__(
        self, store: PackageStore, db: RegistryDatabase, cache: CacheConfig | None = None,
        policy: MirrorPolicy | None = None, classify: Callable[[str], int] | None = None,
    ) -> None:
        cache = cache or CacheConfig()
        self.store = store
        self.db = db
        # The package list and its index (search, the front page); `classify` gives a
        # name's `packages:` rule (rules.rule_index), which decides who sees it.
        self.listing = PackageList(db, classify)
        self.policy = policy or MirrorPolicy()
        # The registry's signing key (signing.py), set once storage is open; None: versions
        # published here carry no registry signature.
        self.signer: SigningKey | None = None
        self.ttl = cache.packument_ttl
        self.writes = ChangeQueue(self.read, self._write, self.changed)
        self.tarballs = TarballCache(cache.tarball_memory, cache.tarball_max_size, cache.packument_ttl)
        self._known: LRUCache[str, Known] = LRUCache(
            DOCUMENT_CACHE_BYTES, getsizeof=lambda k: max(k.current.size * PARSED_OVERHEAD, 1)
        )
        # name -> (token, until, uplink, policy generation, view stamp, view expiry): what
        # the last GET of `name` resolved to. Until then a GET serves those rendered
        # bytes without resolving again.
        self._served: LRUCache[str, tuple[str, float, str | None, int, str, datetime | None]] = LRUCache(
            SERVED_ENTRIES
        )
        # Keyed by the token and the policy view's stamp: together they name exact
        # bytes, so an entry is never stale, only unused.
        self._rendered: LRUCache[tuple[str, str, str, str, str], Rendered] = LRUCache(
            RENDER_CACHE_BYTES, getsizeof=lambda r: weight_of(r.body, r.gzipped) or 1
        )
        self._reading: dict[str, asyncio.Future[Current | None]] = {}
        self._rendering: dict[tuple[str, str, str, str, str], asyncio.Future[Rendered]] = {}
        # Redirect targets of stored tarballs (tarball_redirect), checked once a TTL.
        self.locations: TTLCache[tuple[str, str], str] = TTLCache(LOCATION_ENTRIES, max(self.ttl, 0.001))
        # The base URLs clients used lately: a change pre-renders for them.
        self._bases: dict[str, None] = {}

    # -- reading --------------------------------------------------------------

    async def read(self, name: str, *, cached: bool = False) -> Current | None:
        """The stored packument (tombstones included), or None.

        `cached` (the read paths that serve clients) answers from memory
        within the TTL of the last read, and concurrent misses for one name
        share one storage read. Without it storage is always asked: a change
        (publish, unpublish, dist-tag) must start from the truth, since the
        request before it may have gone to another instance.
        """
        if cached:
            known = self._known.get(name)
            if known is not None and time.monotonic() - known.checked < self.ttl:
                return known.current
            pending = self._reading.get(name)
            if pending is None:
                pending = asyncio.ensure_future(self._load(name))
                self._reading[name] = pending
                pending.add_done_callback(lambda _: self._reading.pop(name, None))
            # Shielded: a client that goes away does not cancel the others' read.
            return await asyncio.shield(pending)
        return await self._load(name)

    async def _load(self, name: str) -> Current | None:
        started = time.monotonic()
        try:
            stored = await self.store.read_packument(name)
        except NotFound:
            stored = None
        known = self._known.get(name)
        if known is not None and known.checked > started:
            # A change (or a later read) landed while this read was under way:
            # it is at least as new as what this read saw.
            return known.current
        if stored is None:
            self._known.pop(name, None)
            return None
        if known is not None and known.current.token == stored.token:
            current = known.current  # unchanged: no parse
        else:
            current = Current(await _loads(stored.data), stored.token, len(stored.data))
        self.remember(name, current)
        return current

    def remember(self, name: str, current: Current) -> None:
        """Make `current` what this process serves for `name`, as of now."""
        put_bounded(self._known, name, Known(current, time.monotonic()))

    async def read_live(self, name: str, *, cached: bool = False) -> Current | None:
        """The packument, or None for a missing or fully unpublished package."""
        current = await self.read(name, cached=cached)
        if current is None or is_tombstone(current.doc):
            return None
        return current

    async def view(self, name: str, current: Current) -> View:
        """What the mirror policy lets clients see of `current` (judged once, then cached)."""
        return await self.policy.view(name, current)

    async def render(
        self, name: str, current: Current, base: str, variant: str, view: View | None = None
    ) -> Rendered:
        """Full or abbreviated bytes with tarball URLs on `base`, of what the policy shows
        (`view`, or the current one); built once per token and view."""
        if view is None:
            view = await self.view(name, current)
        key = (name, current.token, base, variant, view.stamp)
        rendered = self._rendered.get(key)
        if rendered is not None:
            return rendered
        if base not in self._bases:
            self._bases[base] = None
            while len(self._bases) > RECENT_BASES:
                del self._bases[next(iter(self._bases))]
        pending = self._rendering.get(key)
        if pending is None:
            doc = shown_doc(view, current)
            if current.size >= LARGE_DOCUMENT:
                args = (render_bytes, doc, current.token, base, variant)
                if current.size >= TRIM_AFTER_BYTES:
                    args = (trimmed, *args)
                pending = asyncio.ensure_future(asyncio.to_thread(*args))
            else:
                pending = asyncio.get_running_loop().create_future()
                pending.set_result(render_bytes(doc, current.token, base, variant))
            self._rendering[key] = pending
            pending.add_done_callback(lambda _: self._rendering.pop(key, None))
        rendered = await asyncio.shield(pending)
        put_bounded(self._rendered, key, rendered)
        return rendered

    def hot(self, name: str, base: str, variant: str) -> tuple[Rendered, str | None] | None:
        """The bytes a GET of `name` served lately, if still right and held, with the
        uplink the document came from (None: local). No I/O, no lookups."""
        served = self._served.get(name)
        if served is None or time.monotonic() >= served[1] or served[3] != self.policy.generation:
            return None
        if served[5] is not None and self.policy.clock() >= served[5]:
            return None  # a quarantine ended: judge again
        rendered = self._rendered.get((name, served[0], base, variant, served[4]))
        return None if rendered is None else (rendered, served[2])

    def served(
        self, name: str, current: Current, fresh_for: float = float("inf"), view: View = UNCHANGED
    ) -> None:
        """A GET resolved `name` to `current` and showed `view` of it, which stays right for
        `fresh_for` seconds more (a mirrored copy's remaining maxage) and until the view's
        next change (a quarantine ends); `hot` serves it for at most the TTL."""
        known = self._known.get(name)
        if known is not None and known.current.token != current.token:
            return  # changed while that GET was under way: serve the change
        lifetime = min(self.ttl, fresh_for)
        if view.expires is not None:
            lifetime = min(lifetime, (view.expires - self.policy.clock()).total_seconds())
        if lifetime > 0:
            uplink = current.doc[MIRROR_MARK]["uplink"] if is_mirrored(current.doc) else None
            self._served[name] = (
                current.token, time.monotonic() + lifetime, uplink, self.policy.generation, view.stamp,
                view.expires,
            )

    async def prerender(self, name: str, current: Current) -> None:
        """Build every variant clients asked for lately, so the next GET only sends bytes."""
        if is_tombstone(current.doc):
            return
        for base in list(self._bases):
            for variant in (FULL, ABBREVIATED):
                await self.render(name, current, base, variant)

    # -- writing --------------------------------------------------------------

    async def update_packument(
        self,
        name: str,
        fn: Callable[[dict[str, Any] | None], dict[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Read → fn → conditional write; returns (stored, the document fn changed).

        `fn` receives the current document (None when there is none) and
        returns the new one; it raises to refuse the change. It may run more
        than once (a lost write is applied again to a fresh read), so it must
        be pure. Concurrent changes to one name share a write (ChangeQueue):
        the stored document may carry other changes besides this one.
        """
        return await self.writes.submit(name, fn)

    @property
    def conflicts(self) -> int:
        """Lost conditional writes that were retried."""
        return self.writes.conflicts

    async def _write(self, name: str, doc: dict[str, Any], current: Current | None) -> Current:
        data = orjson.dumps(doc)
        if current is None:
            token = await self.store.write_packument(name, data, if_absent=True)
        else:
            token = await self.store.write_packument(name, data, if_match=current.token)
        return Current(doc, token, len(data))

    async def changed(self, name: str, current: Current, old: dict[str, Any] | None) -> None:
        """This process wrote `current`: serve it at once, pre-rendered, and
        drop held tarballs of versions it no longer has."""
        self.remember(name, current)
        self._served.pop(name, None)
        if old is not None:
            kept = current.doc.get("versions") or {}
            versions = old.get("versions") or {}
            for version in set(versions) - set(kept):
                filename = tarball_file_of(name, version, versions[version])
                self.tarballs.forget(name, filename)
                self.locations.pop((name, filename), None)
        await self.prerender(name, current)

    async def record_package(self, doc: dict[str, Any]) -> None:
        """Keep the package list entry (search reads it) in step with the packument."""
        # Typed and bounded (summary_of): every search may read it.
        await self.listing.record(doc["name"], None if is_tombstone(doc) else summary_of(doc))

    def publishing(self, name: str, version: str) -> Lease:
        """`async with`: only one request at a time may publish a given version (any instance)."""
        return Lease(self.db, f"PUBLISH#{name}", version, f"{name}@{version}")


def render_bytes(doc: dict[str, Any], token: str, base: str, variant: str) -> Rendered:
    """The bytes, gzip and strong ETag of one variant of a document (pure; may run in a thread)."""
    view = rewrite_tarball_urls(doc, base)
    view.pop(MIRROR_MARK, None)
    if variant == ABBREVIATED:
        view = abbreviate(view)
    else:
        view = {**view, "_rev": revision(token, doc)}
    # orjson hands back buffers larger than their length (a 289-byte body holds
    # 4 KB) and the render cache is weighed by length: copied to its exact size,
    # what the cache holds is what it counts (the soak's RSS grew without it).
    body = bytes(memoryview(orjson.dumps(view)))
    digest = hashlib.sha256(body).hexdigest()[:32]
    gzipped = gzip.compress(body, 6) if len(body) >= GZIP_MIN_BYTES else None
    return Rendered(body, f'"{digest}"', gzipped)


async def _loads(data: bytes) -> dict[str, Any]:
    # Multi-MB documents are parsed off the event loop.
    if len(data) >= TRIM_AFTER_BYTES:
        return await asyncio.to_thread(trimmed, orjson.loads, data)
    if len(data) >= LARGE_DOCUMENT:
        return await asyncio.to_thread(orjson.loads, data)
    return orjson.loads(data)
