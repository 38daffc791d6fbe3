"""What the mirror reports as it works, through an interface the registry implements.

The uplinks know nothing of Prometheus: the mirror calls an `UplinkEvents`
given when it is built, and the registry's HTTP layer passes one that feeds
its metrics (`registry.http.metrics_uplinks`). The base class does nothing,
which is what the CLI (`tarhold warm`) and the unit tests use.
"""

from __future__ import annotations

# Event names counted per uplink (`UplinkEvents.count`, and `Mirror.stats`).
HIT = "hits"  # a mirrored packument served fresh, without asking the uplink
MISS = "misses"  # a packument fetched from the uplink
REVALIDATED = "revalidated"  # the uplink answered 304: the stored copy is fresh again
STALE = "stale"  # every uplink failed: the old copy was served
FETCH_ERROR = "errors"  # a packument or tarball fetch failed
INTEGRITY_ERROR = "integrity_errors"  # a tarball did not match the packument's integrity
TARBALL_FETCH = "tarball_misses"  # a tarball fetched from the uplink (a storage miss)
RECEIVED_BYTES = "upstream_bytes"  # packument and tarball bytes received from the uplink
EVENTS = (HIT, MISS, STALE, REVALIDATED, FETCH_ERROR, INTEGRITY_ERROR, TARBALL_FETCH, RECEIVED_BYTES)
FAILURES = frozenset({FETCH_ERROR, INTEGRITY_ERROR})


class UplinkEvents:
    """Receives the mirror's events; every method here does nothing."""

    def count(self, uplink: str, event: str, amount: int = 1) -> None:
        """`amount` more of `event` (one of EVENTS) for `uplink`."""

    def circuit_changed(self, uplink: str, state: str) -> None:
        """The circuit breaker of `uplink` is now `state`: closed, open or half-open."""
