"""Prefetch: the packuments clients are about to ask for, fetched before they ask.

When a packument comes from an uplink (a miss: not a hit, not a 304), the
packuments its likely-resolved version depends on are likely next: npm
install asks for them one level of the tree at a time, and npm ci, which
asks only for tarballs, makes the mirror read each tarball's packument first
(the tarball's uplink URL and integrity are in it). A client pays an uplink
round trip for each; a mirror in the middle can pay them early, in the
background, while the client is still busy with the level above.

What is fetched: the `dependencies` and `optionalDependencies` (not dev, not
peer) of the version `dist-tags.latest` names, or of the highest version; an
alias (`npm:other@^1`) as the name it aliases; git, file and URL specs not at
all. Each name goes through `Mirror.lookup`, so the mirror's own rules hold:
a fresh stored copy costs no upstream request, a fetch already running for a
client is joined (never doubled), a package published here is never fetched,
and the uplinks asked are the ones the registry's `packages:` rules name for
that dependency (`proxies_for`; a name no rule proxies, or that is not a
valid name, is left alone).

Bounds, per uplink of the dependency (its config):

- depth: a client's fetch is level 0, its dependencies level 1, theirs level
  2, up to `prefetch_depth` (default 2);
- concurrency: at most `prefetch_concurrency` (default 8) prefetches run at
  once, on workers of their own, so a client's fetch never queues behind
  them (the session allows 64 connections per upstream host);
- count: at most QUEUE_LIMIT names wait; more are dropped;
- repetition: a name queued within RECENT_SECONDS is not queued again;
- failure: only while the uplink's circuit is calm (closed, no failure since
  the last success, no fetch stalling); when it stops being calm, the names
  waiting are dropped. The breaker lets a prefetch through only then, never
  as its probe, and never in place of a client while the uplink is suspect
  (`CircuitBreaker.begin(optional=True)`); a prefetch's failure counts like
  a client's, since the uplink failed all the same. A dropped name is
  counted `prefetch_skipped`; what a prefetch asks of the uplink is counted
  `prefetched`, not as a client's miss or hit.

A prefetch never fails or slows a client's request: it runs in its own tasks,
its errors are logged at DEBUG (the mirror has counted and logged the uplink's
failure), and `close()` cancels it all.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import semver
from cachetools import TTLCache

from storage.base import StorageError

from .breaker import CircuitBreaker
from .config import UplinkConfig
from .errors import MirrorError
from .events import PREFETCH_SKIPPED, UplinkStats

LOG = logging.getLogger(__name__)

QUEUE_LIMIT = 2000  # names waiting per uplink
RECENT_NAMES = 20_000  # names remembered as queued (about 100 bytes each)
RECENT_SECONDS = 300.0
MAX_DEPENDENCIES = 500  # read of one manifest: no real package has more
HIGHEST_OF_LAST = 1000  # versions compared when `latest` names none (documents list them oldest first)
MAX_NAME = 214
DEPENDENCY_FIELDS = ("dependencies", "optionalDependencies")

ProxiesFor = Callable[[str], tuple[str, ...]]  # a package name -> the uplinks to ask, in order
Lookup = Callable[[str, tuple[str, ...], int], Awaitable[Any]]  # Mirror.lookup(name, proxies, depth)
Job = tuple[str, tuple[str, ...], int]  # name, its uplinks, its depth


def likely_version(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The manifest npm most likely resolves: `dist-tags.latest`'s, or the highest version's."""
    versions = doc.get("versions")
    if not isinstance(versions, dict) or not versions:
        return None
    tags = doc.get("dist-tags")
    latest = tags.get("latest") if isinstance(tags, dict) else None
    manifest = versions.get(latest) if isinstance(latest, str) else None
    if isinstance(manifest, dict):
        return manifest
    best: tuple[semver.Version, str] | None = None
    for version in list(versions)[-HIGHEST_OF_LAST:]:
        try:
            parsed = semver.Version.parse(version)
        except (TypeError, ValueError):
            continue
        if best is None or parsed > best[0]:
            best = (parsed, version)
    manifest = versions.get(best[1]) if best else None
    return manifest if isinstance(manifest, dict) else None


def registry_name(name: Any, spec: Any) -> str | None:
    """The registry package a dependency `name: spec` installs, or None when not from a registry."""
    if not isinstance(name, str) or not isinstance(spec, str):
        return None
    spec = spec.strip()
    if spec.startswith("npm:"):
        target = spec[4:]
        at = target.find("@", 1)  # a scope's @ is the first character
        name = target[:at] if at > 0 else target
    elif ":" in spec or "/" in spec:
        return None  # git, file:, link:, workspace:, a URL, GitHub's user/repo
    return name if 0 < len(name) <= MAX_NAME and not any(c.isspace() for c in name) else None


def likely_dependencies(doc: Mapping[str, Any]) -> list[str]:
    """The registry names the likely-resolved version of `doc` depends on (see the module)."""
    manifest = likely_version(doc)
    names: dict[str, None] = {}
    for field in DEPENDENCY_FIELDS:
        dependencies = manifest.get(field) if manifest is not None else None
        if not isinstance(dependencies, dict):
            continue
        for dependency, spec in dependencies.items():
            name = registry_name(dependency, spec)
            if name is not None and name != doc.get("name"):
                names[name] = None
            if len(names) >= MAX_DEPENDENCIES:
                return list(names)
    return list(names)


class Prefetcher:
    """Background packument fetches, queued per uplink and bounded (see the module)."""

    def __init__(
        self, configs: Mapping[str, UplinkConfig], breakers: Mapping[str, CircuitBreaker],
        stats: UplinkStats, lookup: Lookup, proxies_for: ProxiesFor,
    ) -> None:
        self.configs = configs
        self.breakers = breakers
        self.stats = stats
        self.lookup = lookup
        self.proxies_for = proxies_for
        self._queues: dict[str, deque[Job]] = {}
        self._workers: dict[str, set[asyncio.Task[None]]] = {}
        self._recent: TTLCache[str, bool] = TTLCache(RECENT_NAMES, RECENT_SECONDS)
        self._closed = False

    def fetched(self, doc: Mapping[str, Any], depth: int) -> None:
        """`doc` just came from an uplink for a lookup at `depth` (0: a client's): queue what it needs."""
        if self._closed:
            return
        for name in likely_dependencies(doc):
            self.offer(name, depth + 1)

    def offer(self, name: str, depth: int) -> None:
        """Queue `name` for a prefetch at `depth`, within the bounds of its uplink."""
        if name in self._recent:
            return
        proxies = tuple(uplink for uplink in self.proxies_for(name) if uplink in self.breakers)
        if not proxies:
            return
        uplink = proxies[0]  # the one asked first, so the one whose bounds hold
        config = self.configs[uplink]
        if not config.prefetch or depth > config.prefetch_depth:
            return
        queue = self._queues.setdefault(uplink, deque())
        if len(queue) >= QUEUE_LIMIT or not self.breakers[uplink].calm():
            self.stats.add(uplink, PREFETCH_SKIPPED)
            return
        self._recent[name] = True
        queue.append((name, proxies, depth))
        workers = self._workers.setdefault(uplink, set())
        if len(workers) < config.prefetch_concurrency:
            task = asyncio.ensure_future(self._work(uplink, queue))
            workers.add(task)
            task.add_done_callback(workers.discard)

    def pending(self) -> int:
        """Names queued or being fetched, over every uplink."""
        return sum(len(queue) for queue in self._queues.values()) + sum(
            len(workers) for workers in self._workers.values()
        )

    async def _work(self, uplink: str, queue: deque[Job]) -> None:
        breaker = self.breakers[uplink]
        while queue and not self._closed:
            if not breaker.calm():
                self.stats.add(uplink, PREFETCH_SKIPPED, len(queue))
                for name, _, _ in queue:
                    self._recent.pop(name, None)  # not fetched: may be offered again
                queue.clear()
                return
            name, proxies, depth = queue.popleft()
            try:
                await self.lookup(name, proxies, depth)
            except (MirrorError, StorageError) as exc:
                LOG.debug("prefetch of %s failed: %s", name, exc)
            except Exception:  # a bug here must not end the worker, nor reach a client
                LOG.exception("prefetch of %s failed", name)

    def close(self) -> None:
        """Cancel every prefetch and forget what was queued."""
        self._closed = True
        for workers in self._workers.values():
            for task in workers:
                task.cancel()
        for queue in self._queues.values():
            queue.clear()
