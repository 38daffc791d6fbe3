"""Local packages: reading, rendering and every change to a packument.

Every change goes through `update_packument(name, fn)`: read, apply a pure
function, write with the token read, and on `Conflict` read and apply again;
concurrent changes to one name share one such write (change_queue).
Handlers stay thin; this module is testable without HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cachetools import LRUCache, TTLCache

from registry.domain.caches import (
    CacheConfig,
    ReleasingCache,
    TarballCache,
    put_bounded,
)
from registry.domain.change_queue import ChangeQueue
from registry.domain.leases import Lease
from registry.domain.mirror_policy import UNCHANGED, MirrorPolicy, View, shown_doc
from registry.domain.package_list import PackageList
from registry.domain.packument import tarball_file_of
from registry.domain.packument_render import (
    ABBREVIATED,
    FULL,
    Rendered,
    SpillFiles,
    render_bytes,
)
from registry.domain.signing import SigningKey
from registry.domain.summaries import summary_of
from storage.base import NotFound, PackageStore, RegistryDatabase, packument_token
from storage.heap import TRIM_AFTER_BYTES, loads_handed, trim, trimmed
from uplinks.documents import MIRROR_MARK, Current, is_mirrored, is_tombstone

__all__ = ["ABBREVIATED", "FULL", "MIRROR_MARK", "Current", "Packages", "Rendered", "is_mirrored"]

LOG = logging.getLogger(__name__)

# Both caches are weighed in bytes (their budgets: `cache:` in config.yaml,
# caches.CacheConfig): the rendered variants by their own size, parsed documents
# by an estimate of their Python objects, this many times their JSON (21 MB of
# JSON measured 87 MB parsed by orjson, 80 MB by `loads_text`).
PARSED_OVERHEAD = 4
# A document larger than `cache.parsed_max_size` stays parsed only while it is
# used: until this long after storage last gave it (or twice the TTL, if longer).
# Used means read within the TTL again; serving its bytes needs no parsed copy.
LARGE_HOLD = 10.0
SERVED_ENTRIES = 100_000
# Documents at least this large are parsed, rendered and gzipped in a thread.
LARGE_DOCUMENT = 256 * 1024
RECENT_BASES = 4
LOCATION_ENTRIES = 10_000

# name -> (token, until, uplink, policy generation, view stamp, view expiry, fresh until):
# what the last GET of `name` resolved to (see Packages.hot).
Served = tuple[str, float, str | None, int, str, datetime | None, float]


@dataclass(frozen=True)
class Known:
    """What this process last read (or wrote) for a name, and when."""

    current: Current
    checked: float  # monotonic time storage last gave (or took) this document


def _weight(known: Known) -> int:
    return max(known.current.size * PARSED_OVERHEAD, 1)


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
        # Parsed documents: up to parsed_max_size kept while the budget allows, larger
        # ones (tens of MB parsed each) only while in use (LARGE_HOLD).
        self.parsed_max_size = cache.parsed_max_size
        self.hold = max(LARGE_HOLD, 2 * self.ttl)
        self._known: LRUCache[str, Known] = LRUCache(max(cache.parsed_memory, 1), getsizeof=_weight)
        self._large: TTLCache[str, Known] = TTLCache(max(cache.parsed_memory, 1), self.hold, getsizeof=_weight)
        # What the last GET of each name resolved to (`Served`). Until then a GET serves
        # those rendered bytes without resolving again; after, once storage confirms them.
        self._served: LRUCache[str, Served] = LRUCache(SERVED_ENTRIES)
        # Large documents' renderings are files (deleted once the cache lets go of them).
        self.spill = SpillFiles()
        # Keyed by the token and the policy view's stamp: together they name exact
        # bytes, so an entry is never stale, only unused.
        self._rendered: ReleasingCache[tuple[str, str, str, str, str], Rendered] = ReleasingCache(
            max(cache.packument_memory, 1), lambda r: r.weight or 1, self.spill.release
        )
        self._reading: dict[str, asyncio.Future[Current | None]] = {}
        self._checking: dict[str, asyncio.Future[bool]] = {}
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
            known = self._held(name)
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
        held, stored = self._held(name), None
        try:
            # A document held parsed is checked by its token alone (a stat on disk, a
            # HEAD on S3): unchanged, nothing is read or parsed.
            if held is None or await packument_token(self.store, name) != held.current.token:
                stored = await self.store.read_packument(name)
        except NotFound:
            held = None
        known = self._held(name)
        if known is not None and known.checked > started:
            # A change (or a later read) landed while this read was under way:
            # it is at least as new as what this read saw.
            return known.current
        if stored is None and held is None:
            self._known.pop(name, None)
            self._large.pop(name, None)
            return None
        if stored is None:
            current = held.current  # unchanged
        elif known is not None and known.current.token == stored.token:
            current = known.current  # unchanged: no parse
        elif len(stored.data) >= TRIM_AFTER_BYTES:
            # Parsed from its text, its bytes dropped first (not held through the parse).
            token, size, box = stored.token, len(stored.data), [stored.data.decode()]
            del stored
            current = Current(await asyncio.to_thread(loads_handed, box), token, size)
        else:
            current = Current(await _loads(stored.data), stored.token, len(stored.data))
        self.remember(name, current)
        return current

    def _held(self, name: str) -> Known | None:
        return self._known.get(name) or self._large.get(name)

    def remember(self, name: str, current: Current) -> None:
        """Make `current` what this process serves for `name`, as of now."""
        known = Known(current, time.monotonic())
        if current.size <= self.parsed_max_size:
            self._large.pop(name, None)
            put_bounded(self._known, name, known)
            return
        self._known.pop(name, None)
        if put_bounded(self._large, name, known):
            # Expired entries go when the cache is next written; this one must go
            # on time even if nothing is, so a quiet process lets go of it.
            asyncio.get_running_loop().call_later(self.hold + 0.1, self._let_go)

    def _let_go(self) -> None:
        """Drop the large documents unused for `hold`, and give the heap back: tens of MB
        of holes otherwise stay resident (12 MB after the bench's 20 MB document)."""
        if self._large.expire():
            trim()

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
            if current.size >= TRIM_AFTER_BYTES:
                args = (trimmed, render_bytes, doc, current.token, base, variant, self.spill.directory())
                pending = asyncio.ensure_future(asyncio.to_thread(*args))
            elif current.size >= LARGE_DOCUMENT:
                pending = asyncio.ensure_future(asyncio.to_thread(render_bytes, doc, current.token, base, variant))
            else:
                pending = asyncio.get_running_loop().create_future()
                pending.set_result(render_bytes(doc, current.token, base, variant))
            self._rendering[key] = pending
            pending.add_done_callback(lambda _: self._rendering.pop(key, None))
        rendered = await asyncio.shield(pending)
        if self._rendered.get(key) is not rendered and not put_bounded(self._rendered, key, rendered):
            self.spill.release(rendered)  # too large to keep: its file goes once this GET is done
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

    async def revalidate(self, name: str, base: str, variant: str) -> tuple[Rendered, str | None] | None:
        """`hot` once its TTL ran out: the same bytes, for another TTL, when storage still
        holds the very document they were rendered from and it is still fresh (a mirrored
        copy within its maxage). One check of the stored token (a stat, a HEAD), shared by
        concurrent callers; nothing read or parsed, so a document too large to keep
        parsed is served without parsing it."""
        served = self._served.get(name)
        if served is None or served[3] != self.policy.generation or time.monotonic() >= served[6]:
            return None
        if served[5] is not None and self.policy.clock() >= served[5]:
            return None
        rendered = self._rendered.get((name, served[0], base, variant, served[4]))
        if rendered is None:
            return None
        pending = self._checking.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._recheck(name, served))
            self._checking[name] = pending
            pending.add_done_callback(lambda _: self._checking.pop(name, None))
        return (rendered, served[2]) if await asyncio.shield(pending) else None

    async def _recheck(self, name: str, served: Served) -> bool:
        """Whether storage still holds the document `served` names; if so it is served
        again for a TTL (done here, once, before anyone sharing this read resumes)."""
        try:
            token = await packument_token(self.store, name)
        except NotFound:
            return False
        if token != served[0] or self._served.get(name) is not served:
            return False  # changed in storage, or here meanwhile
        lifetime = min(self.ttl, served[6] - time.monotonic())
        if lifetime <= 0:
            return False
        self._served[name] = (served[0], time.monotonic() + lifetime, *served[2:])
        return True

    def served(
        self, name: str, current: Current, fresh_for: float = float("inf"), view: View = UNCHANGED
    ) -> None:
        """A GET resolved `name` to `current` and showed `view` of it, which stays right for
        `fresh_for` seconds more (a mirrored copy's remaining maxage) and until the view's
        next change (a quarantine ends); `hot` serves it for at most the TTL."""
        known = self._held(name)
        if known is not None and known.current.token != current.token:
            return  # changed while that GET was under way: serve the change
        now = time.monotonic()
        lifetime = min(self.ttl, fresh_for)
        if view.expires is not None:
            lifetime = min(lifetime, (view.expires - self.policy.clock()).total_seconds())
        if lifetime > 0:
            uplink = current.doc[MIRROR_MARK]["uplink"] if is_mirrored(current.doc) else None
            self._served[name] = (
                current.token, now + lifetime, uplink, self.policy.generation, view.stamp, view.expires,
                now + fresh_for,
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
        if current.size > self.parsed_max_size:
            # The bytes of the document this one replaces are tens of MB that no GET
            # asks for any more: drop them before rendering the new ones.
            for key in [key for key in self._rendered if key[0] == name and key[1] != current.token]:
                self._rendered.pop(key, None)
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


async def _loads(data: bytes) -> dict[str, Any]:
    # Large documents are parsed off the event loop (multi-MB ones from text: _load).
    if len(data) >= LARGE_DOCUMENT:
        return await asyncio.to_thread(orjson.loads, data)
    return orjson.loads(data)
