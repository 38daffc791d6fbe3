"""The caching mirror above the Uplink protocol: freshness, stale serves,
circuit breaking and request coalescing for packuments.

Mirrored packuments live in the package store at the same key as local ones,
marked with a `_tarhold` field naming the uplink and its validators. A
document without that mark was published here, and a published name is never
fetched from or merged with an uplink (dependency-confusion guard).

The mirror reports what it does through `UplinkEvents` (`uplinks/events.py`)
and fails with its own errors (`uplinks/errors.py`); the registry wires the
first to its metrics and maps the second to HTTP answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

import aiohttp
from cachetools import LRUCache, TTLCache

from storage.base import ConfigError, Conflict, StorageError
from uplinks.config import UplinkConfig

from .base import FetchedPackument, PackageNotFound, Uplink, UplinkError
from .breaker import CircuitBreaker
from .documents import (
    MIRROR_MARK,
    Current,
    Freshness,
    MirroredPackages,
    dist_for,
    dumps_document,
    is_mirrored,
    is_tombstone,
    loads_document,
)
from .errors import UplinkBadGateway, UplinkUnavailable
from .events import (
    FETCH_ERROR,
    HIT,
    INTEGRITY_ERROR,
    MISS,
    RECEIVED_BYTES,
    REVALIDATED,
    STALE,
    TARBALL_FETCH,
    UplinkEvents,
    UplinkStats,
)
from .factories import uplink_factories
from .prefetch import Prefetcher, ProxiesFor
from .tee import Download, Expected, IntegrityError

LOG = logging.getLogger(__name__)

MARK = MIRROR_MARK
FRESHNESS_ENTRIES = 100_000


class Mirror:
    """Packuments from uplinks, kept in the package store; one refresh per name at a time.

    `events` hears every count and circuit change (default: nobody does).
    `proxies_for` (a name -> the uplinks its `packages:` rule proxies) turns
    on prefetch (`uplinks.prefetch`) for the uplinks whose config allows it.
    """

    def __init__(
        self, packages: MirroredPackages, configs: Mapping[str, UplinkConfig], via_id: str = "",
        events: UplinkEvents | None = None, proxies_for: ProxiesFor | None = None,
    ) -> None:
        events = events if events is not None else UplinkEvents()
        self.packages = packages
        self.configs = dict(configs)
        self.via_id = via_id
        self.uplinks: dict[str, Uplink] = {}
        self.breakers = {
            name: CircuitBreaker(
                c.max_fails, c.fail_timeout, on_change=partial(events.circuit_changed, name),
                # A fetch outstanding half its timeout makes the uplink suspect.
                stall_after=c.timeout / 2,
            )
            for name, c in self.configs.items()
        }
        self.stats = UplinkStats(events=events)
        self.session: aiohttp.ClientSession | None = None
        # Bounded: one small entry per package name asked for recently.
        self._fresh: LRUCache[str, Freshness] = LRUCache(FRESHNESS_ENTRIES)
        self._inflight: dict[str, asyncio.Task[Current | None]] = {}
        self._prefetching: set[str] = set()  # names whose fetch in flight is a prefetch's
        self._downloads: dict[tuple[str, str], Download] = {}
        self._download_tasks: set[asyncio.Task[Any]] = set()
        self._stored_recently: TTLCache[tuple[str, str], bool] = TTLCache(10_000, 60)
        self.prefetch: Prefetcher | None = None
        if proxies_for is not None:
            self.prefetch = Prefetcher(self.configs, self.breakers, self.stats, self.lookup, proxies_for)
        factories = uplink_factories()
        for name, config in self.configs.items():
            if config.type not in factories:
                raise ConfigError(f"uplinks.{name}.type", f"no uplink type {config.type!r} is installed")

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, limit_per_host=64, ttl_dns_cache=300),
            auto_decompress=True,
        )
        factories = uplink_factories()
        for name, config in self.configs.items():
            factory = factories[config.type]
            if not isinstance(factory, type):
                factory = factory.load()
            self.uplinks[name] = factory(config, self.session)

    async def close(self) -> None:
        if self.prefetch:
            self.prefetch.close()
        for task in [*self._inflight.values(), *self._download_tasks]:
            task.cancel()
        for uplink in self.uplinks.values():
            await uplink.close()
        if self.session is not None:
            await self.session.close()

    def via(self, incoming: str = "") -> str:
        ours = f"1.1 tarhold-{self.via_id}"
        return f"{incoming}, {ours}" if incoming else ours

    def is_loop(self, incoming_via: str) -> bool:
        """A request that already passed through this registry must not go upstream again."""
        return bool(self.via_id) and f"tarhold-{self.via_id}" in incoming_via

    # -- packuments -----------------------------------------------------------

    async def packument(self, name: str, proxies: tuple[str, ...], via: str = "") -> Current | None:
        """The document to serve for `name`: local, fresh mirrored, refreshed, or stale.

        `Packages.read` answers from memory within the packument TTL, so a
        local or fresh mirrored document costs no storage read then.
        """
        return await self.lookup(name, proxies, via=via)

    async def lookup(self, name: str, proxies: tuple[str, ...], depth: int = 0, via: str = "") -> Current | None:
        """`packument`, for a client (`depth` 0) or for a prefetch `depth` levels below one."""
        looked = time.monotonic()
        stored = await self.packages.read(name, cached=True)
        if stored is not None and not is_mirrored(stored.doc):
            return None if is_tombstone(stored.doc) else stored
        usable = tuple(p for p in proxies if p in self.uplinks)
        if not usable or self.is_loop(via):
            return stored
        if stored is not None and self._still_fresh(name, stored):
            self.stats.lookup(stored.doc[MARK]["uplink"], HIT, depth)
            return stored
        task = self._inflight.get(name)
        fresh = self._fresh.get(name)
        if task is None and fresh is not None and fresh.checked >= looked:
            # A refresh finished while we read storage (and read too early to
            # see its result): it updated the read cache, so no second fetch.
            again = await self.packages.read(name, cached=True)
            if again is not None and again.token == fresh.token:
                self.stats.lookup(again.doc[MARK]["uplink"], HIT, depth)
                return again
        if task is None:
            task = self._start_refresh(name, usable, stored, via, depth)
        elif depth == 0 and name in self._prefetching:
            # A prefetch's fetch is refused where a client's is not (the breaker lets
            # one through only while calm): a client it was refused fetches as itself.
            try:
                return await asyncio.shield(task)
            except UplinkUnavailable:
                task = self._inflight.get(name) or self._start_refresh(name, usable, stored, via, depth)
        # Shielded: a client that goes away does not cancel the others' fetch.
        return await asyncio.shield(task)

    def _start_refresh(
        self, name: str, proxies: tuple[str, ...], stored: Current | None, via: str, depth: int
    ) -> asyncio.Task[Current | None]:
        task = asyncio.ensure_future(self._refresh(name, proxies, stored, via, depth))
        self._inflight[name] = task
        if depth:
            self._prefetching.add(name)

        def finished(_: object) -> None:
            if self._inflight.get(name) is task:
                del self._inflight[name]
                self._prefetching.discard(name)

        task.add_done_callback(finished)
        return task

    def fresh_for(self, name: str, current: Current) -> float:
        """Seconds `current` may still be served without asking the uplinks (inf when local)."""
        if not is_mirrored(current.doc):
            return float("inf")
        remaining = 0.0
        fresh = self._fresh.get(name)
        if fresh is not None and fresh.token == current.token:
            remaining = fresh.maxage - (time.monotonic() - fresh.checked)
        config = self.configs.get(current.doc[MARK].get("uplink"))
        if config is not None:
            fetched = float(current.doc[MARK].get("fetched", 0))
            remaining = max(remaining, config.maxage - (time.time() - fetched))
        return max(remaining, 0.0)

    def _still_fresh(self, name: str, stored: Current) -> bool:
        """Fetched within maxage, or revalidated (a 304) within maxage by this process."""
        fresh = self._fresh.get(name)
        if fresh is not None and fresh.token == stored.token and time.monotonic() - fresh.checked < fresh.maxage:
            return True
        mark = stored.doc[MARK]
        config = self.configs.get(mark.get("uplink"))
        return config is not None and time.time() - float(mark.get("fetched", 0)) < config.maxage

    def _remember(self, name: str, current: Current) -> None:
        config = self.configs.get(current.doc.get(MARK, {}).get("uplink"))
        maxage = config.maxage if config else 0.0
        self._fresh[name] = Freshness(current.token, time.monotonic(), maxage)

    async def _refresh(
        self, name: str, proxies: tuple[str, ...], stored: Current | None, via: str, depth: int = 0
    ) -> Current | None:
        problems: list[str] = []
        not_found = 0
        for uplink_name in proxies:
            breaker = self.breakers[uplink_name]
            attempt = breaker.begin(optional=depth > 0)
            if attempt is None:
                problems.append(f"{uplink_name}: circuit open")
                continue
            uplink = self.uplinks[uplink_name]
            mark = stored.doc[MARK] if stored is not None and stored.doc[MARK].get("uplink") == uplink_name else {}
            outcome: bool | None = None
            try:
                fetched = await uplink.fetch_packument(
                    name, etag=mark.get("etag"), last_modified=mark.get("last_modified"),
                    via=self.via(via),
                )
                outcome = True
            except PackageNotFound:
                outcome = True
                not_found += 1
                continue
            except UplinkError as exc:
                outcome = False
                self.stats.add(uplink_name, FETCH_ERROR)
                problems.append(f"{uplink_name}: {exc}")
                LOG.warning("uplink %s failed for %s: %s", uplink_name, name, exc)
                continue
            finally:
                breaker.end(attempt, outcome)
            if fetched.data is None and stored is not None:
                self.stats.lookup(uplink_name, REVALIDATED, depth)
                self._remember(name, stored)
                return stored
            if fetched.data is None:
                problems.append(f"{uplink_name}: 304 without a stored copy")
                continue
            self.stats.lookup(uplink_name, MISS, depth)
            self.stats.add(uplink_name, RECEIVED_BYTES, len(fetched.data))
            try:
                current = await self._keep(name, uplink_name, fetched, stored)
            except UplinkError as exc:
                problems.append(f"{uplink_name}: {exc}")
                continue
            if self.prefetch and is_mirrored(current.doc):
                self.prefetch.fetched(current.doc, depth)
            return current
        if stored is not None:
            uplink_name = stored.doc[MARK].get("uplink", "-")
            self.stats.lookup(uplink_name, STALE, depth)
            LOG.log(logging.DEBUG if depth else logging.WARNING, "serving a stale copy of %s: %s", name,
                    "; ".join(problems) or "not found upstream")
            return stored
        if not problems:
            return None  # every uplink said 404
        if all("circuit open" in p for p in problems):
            raise UplinkUnavailable(f"every uplink for {name} is failing; try again later")
        raise UplinkBadGateway(f"could not fetch {name} from its uplinks: {'; '.join(problems)}")

    async def _keep(
        self, name: str, uplink: str, fetched: FetchedPackument, stored: Current | None,
    ) -> Current:
        """Parse once (off the loop when large), mark, store, and return the document.

        Each form of a multi-MB document is dropped as soon as the next one is
        made (its bytes for the parse, the JSON stored once written), so no two
        are held at once besides the parsed document.
        """
        doc = await loads_document(fetched.take())
        if not isinstance(doc, dict) or doc.get("name") != name or not isinstance(doc.get("versions"), dict):
            raise UplinkError(f"{uplink} sent a document that is not the packument of {name}")
        doc[MARK] = {
            "uplink": uplink, "etag": fetched.etag, "last_modified": fetched.last_modified,
            "fetched": time.time(),
        }
        body = await dumps_document(doc)
        size = len(body)
        try:
            if stored is None:
                token = await self.packages.store.write_packument(name, body, if_absent=True)
            else:
                token = await self.packages.store.write_packument(name, body, if_match=stored.token)
        except Conflict:
            # Another instance refreshed (or someone published) meanwhile: theirs wins.
            again = await self.packages.read(name)
            if again is not None and not is_mirrored(again.doc):
                return again
            token = "mem|" + hashlib.sha256(body).hexdigest()[:32]
        except StorageError:
            LOG.exception("could not store the mirrored packument of %s; serving it anyway", name)
            token = "mem|" + hashlib.sha256(body).hexdigest()[:32]
        del body  # not needed for what follows (rendering)
        current = Current(doc, token, size)
        self._remember(name, current)
        await self.packages.changed(name, current, None)
        return current

    # -- tarballs --------------------------------------------------------------

    async def tarball(self, name: str, filename: str, proxies: tuple[str, ...], via: str = "") -> Download | None:
        """The running (or a new) fetch of a tarball that is not in storage; None if unknown."""
        download = self._downloads.get((name, filename))
        if download is not None:
            return download
        current = await self.packument(name, proxies, via)
        if current is None or not is_mirrored(current.doc) or self.is_loop(via):
            return None
        dist = dist_for(current.doc, filename)
        uplink_name = current.doc[MARK]["uplink"]
        uplink = self.uplinks.get(uplink_name)
        if dist is None or uplink is None:
            return None
        download = self._downloads.get((name, filename))  # joined while we looked it up?
        if download is not None:
            return download
        # A fetch may have finished (and left) while we looked the packument
        # up: then storage has the file and nothing needs fetching.
        if (name, filename) in self._stored_recently:
            raise AlreadyStored(filename)
        breaker = self.breakers[uplink_name]
        attempt = breaker.begin()
        if attempt is None:
            raise UplinkUnavailable(f"uplink {uplink_name} is failing; try again later")
        download = Download(name, filename)
        self._downloads[(name, filename)] = download
        url = uplink.tarball_url(str(dist.get("tarball", "")), name, filename)
        store = self.packages.store if self.configs[uplink_name].cache else None
        task = asyncio.ensure_future(
            download.run(uplink, url, Expected.from_dist(dist), store, self.via(via))
        )
        self._download_tasks.add(task)

        def finished(task: asyncio.Task[int]) -> None:
            self._download_tasks.discard(task)
            self._downloads.pop((name, filename), None)
            if task.cancelled():
                breaker.end(attempt, None)
                return
            error = task.exception()
            # Only the uplink's own failures count; a refused answer or a
            # storage failure says nothing about whether the uplink is up.
            breaker.end(attempt, True if error is None or isinstance(error, IntegrityError)
                        else False if isinstance(error, UplinkError) else None)
            if error is None:
                if store is not None:
                    # In the same callback that drops the download (no await
                    # between), so a request that missed storage finds one
                    # or the other.
                    self._stored_recently[(name, filename)] = True
                    held = self.packages.tarballs
                    if held.fits(download.written):  # the next GET is served from memory
                        hold = asyncio.ensure_future(held.hold_stored(store, name, filename, download.body()))
                        self._download_tasks.add(hold)
                        hold.add_done_callback(self._download_tasks.discard)
                self.stats.add(uplink_name, TARBALL_FETCH)
                self.stats.add(uplink_name, RECEIVED_BYTES, task.result())
            elif isinstance(error, IntegrityError):
                self.stats.add(uplink_name, INTEGRITY_ERROR)
                # A warning, not an error: the upstream lied, tarhold did its
                # job (uplink_errors_total{kind="integrity"} is what to alert on).
                LOG.warning("refused to mirror %s/%s: %s", name, filename, error)
            else:
                self.stats.add(uplink_name, FETCH_ERROR)
                LOG.warning("mirroring %s/%s failed: %s", name, filename, error)

        task.add_done_callback(finished)
        return download


class AlreadyStored(Exception):
    """The tarball arrived in storage while a request was about to fetch it."""
