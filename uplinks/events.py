"""What the mirror reports as it works, through an interface the registry implements.

The uplinks know nothing of Prometheus: the mirror calls an `UplinkEvents`
given when it is built, and the registry's HTTP layer passes one that feeds
its metrics (`registry.http.metrics_uplinks`). The base class does nothing,
which is what the CLI (`tarhold warm`) and the unit tests use.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

# Event names counted per uplink (`UplinkEvents.count`, and `Mirror.stats`).
# hits, misses, revalidated and stale count a client's lookups; what a prefetch
# does is counted apart (prefetched, prefetch_skipped), so that the hit ratio
# stays the share of clients answered without waiting for an uplink.
HIT = "hits"  # a mirrored packument served fresh, without asking the uplink
MISS = "misses"  # a packument fetched from the uplink
REVALIDATED = "revalidated"  # the uplink answered 304: the stored copy is fresh again
STALE = "stale"  # every uplink failed: the old copy was served
FETCH_ERROR = "errors"  # a packument or tarball fetch failed
INTEGRITY_ERROR = "integrity_errors"  # a tarball did not match the packument's integrity
TARBALL_FETCH = "tarball_misses"  # a tarball fetched from the uplink (a storage miss)
RECEIVED_BYTES = "upstream_bytes"  # packument and tarball bytes received from the uplink
PREFETCHED = "prefetched"  # a packument asked of the uplink ahead of clients (a 200 or a 304)
PREFETCH_SKIPPED = "prefetch_skipped"  # a dependency not prefetched: circuit not calm, or queue full
EVENTS = (
    HIT, MISS, STALE, REVALIDATED, FETCH_ERROR, INTEGRITY_ERROR, TARBALL_FETCH, RECEIVED_BYTES,
    PREFETCHED, PREFETCH_SKIPPED,
)
FAILURES = frozenset({FETCH_ERROR, INTEGRITY_ERROR})


class UplinkEvents:
    """Receives the mirror's events; every method here does nothing."""

    def count(self, uplink: str, event: str, amount: int = 1) -> None:
        """`amount` more of `event` (one of EVENTS) for `uplink`."""

    def circuit_changed(self, uplink: str, state: str) -> None:
        """The circuit breaker of `uplink` is now `state`: closed, open or half-open."""


@dataclass
class UplinkStats:
    """Counters per uplink (EVENTS names them), kept here and passed on to the
    mirror's `UplinkEvents`, plus when each uplink last failed."""

    counts: Counter[str] = field(default_factory=Counter)
    last_error: dict[str, float] = field(default_factory=dict)  # uplink -> epoch seconds
    events: UplinkEvents = field(default_factory=UplinkEvents)

    def add(self, uplink: str, what: str, amount: int = 1) -> None:
        """Count `amount` of the event `what` for `uplink`."""
        self.counts[f"{uplink}:{what}"] += amount
        if what in FAILURES:
            self.last_error[uplink] = time.time()
        self.events.count(uplink, what, amount)

    def lookup(self, uplink: str, what: str, depth: int) -> None:
        """Count a lookup's result: a client's (`depth` 0) as itself; a prefetch's
        fetch (a miss or a 304) as PREFETCHED, and its hits and stale answers not at all."""
        if not depth:
            self.add(uplink, what)
        elif what in (MISS, REVALIDATED):
            self.add(uplink, PREFETCHED)
