"""Prometheus metrics: the metric objects every `tarhold_` series comes from.

Every name starts with `tarhold_`. Labels stay low-cardinality: a request is
labelled with the *shape* of its route (`packument`, `tarball`, ...), never a
package name; uplinks and storage backends are few and named in the config.

The metric objects are built once per process, on first use rather than at
import, so `tarhold serve --workers N` can set `PROMETHEUS_MULTIPROC_DIR`
before any of them exists. With that variable set, every process writes its
values to files in that directory and `/-/metrics` merges them
(`MultiProcessCollector`); without it, the process's default registry is
served (which adds the `process_*` and `python_*` metrics).

What feeds them, one module each:
- requests: `metrics_middleware.py` (route labels, timing, sizes), gathered
  in a `RequestBatch` here;
- storage calls: timing proxies around the store and database (`metrics_storage.py`);
- uplinks: the mirror's events (`metrics_uplinks.py`);
- the `/-/metrics` endpoint and the flushes workers need: `metrics_endpoint.py`.

`/-/metrics` is readable without credentials, like `/-/ping`: it holds counts
and route shapes, no package names or users. Keep it off the public internet
at the network (a load balancer rule, a NetworkPolicy) if that matters.
"""

from __future__ import annotations

from bisect import bisect_left
from functools import cache
from typing import Any

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram, values

from uplinks.events import (
    FETCH_ERROR,
    HIT,
    INTEGRITY_ERROR,
    MISS,
    PREFETCH_SKIPPED,
    PREFETCHED,
    RECEIVED_BYTES,
    REVALIDATED,
    STALE,
    TARBALL_FETCH,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Packuments from the in-process cache answer in well under a millisecond;
# a cold tarball through an uplink can take seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UPPER_BOUNDS = (*LATENCY_BUCKETS, float("inf"))
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
# The mirror's event names (uplinks.events) to (metric attribute, label value).
UPLINK_EVENTS = {
    HIT: ("uplink_cache", "hit"),
    MISS: ("uplink_cache", "miss"),
    STALE: ("uplink_cache", "stale"),
    REVALIDATED: ("uplink_cache", "revalidated"),
    FETCH_ERROR: ("uplink_errors", "fetch"),
    INTEGRITY_ERROR: ("uplink_errors", "integrity"),
    TARBALL_FETCH: ("uplink_tarballs", None),
    RECEIVED_BYTES: ("uplink_bytes", None),
    PREFETCHED: ("uplink_prefetches", "fetched"),
    PREFETCH_SKIPPED: ("uplink_prefetches", "skipped"),
}


class Metrics:
    """The metric objects of this process (build with `metrics()`)."""

    def __init__(self) -> None:
        # No `_created` series: they double the output and no query here needs them.
        prometheus_client.disable_created_metrics()
        self.requests = Counter(
            "tarhold_http_requests_total", "HTTP requests answered, by route shape, method and status.",
            ["route", "method", "status"],
        )
        self.duration = Histogram(
            "tarhold_http_request_duration_seconds", "Time from request to the end of the response body.",
            ["route"], buckets=LATENCY_BUCKETS,
        )
        self.response_bytes = Counter(
            "tarhold_http_response_bytes_total", "Response body bytes sent, by route shape.", ["route"]
        )
        self.in_flight = Gauge(
            "tarhold_http_requests_in_flight", "Requests being handled now (not counting the scrape).",
            multiprocess_mode="livesum",
        )
        self.publishes = Counter("tarhold_publishes_total", "Package versions published here.")
        self.sign_ins = Counter(
            "tarhold_sign_in_attempts_total",
            "Password and one-time password checks by channel (basic, adduser, web-login, web, token, password, otp) and result:"
            " ok, failed (wrong password or unknown name), throttled (refused before checking).",
            ["channel", "result"],
        )
        self.uplink_cache = Counter(
            "tarhold_uplink_cache_requests_total",
            "Mirrored packument lookups per uplink: hit (fresh copy), miss (fetched),"
            " revalidated (304 from the uplink), stale (uplink failed, old copy served).",
            ["uplink", "result"],
        )
        self.uplink_errors = Counter(
            "tarhold_uplink_errors_total",
            "Failed uplink fetches (kind=fetch) and tarballs refused for a wrong checksum (kind=integrity).",
            ["uplink", "kind"],
        )
        self.uplink_tarballs = Counter(
            "tarhold_uplink_tarball_fetches_total", "Tarballs fetched from an uplink (storage misses).", ["uplink"]
        )
        self.uplink_prefetches = Counter(
            "tarhold_uplink_prefetches_total",
            "Packuments of dependencies asked of an uplink ahead of clients (result=fetched: a 200 or a 304;"
            " not counted as cache requests), or dropped (result=skipped: circuit not calm, queue full).",
            ["uplink", "result"],
        )
        self.uplink_bytes = Counter(
            "tarhold_uplink_received_bytes_total", "Packument and tarball bytes received from an uplink.",
            ["uplink"],
        )
        self.circuit = Gauge(
            "tarhold_uplink_circuit_state", "Circuit breaker per uplink: 0 closed, 1 open, 2 half-open.",
            ["uplink"], multiprocess_mode="livemax",
        )
        self.storage_seconds = Histogram(
            "tarhold_storage_operation_seconds", "Latency of package store and registry database calls.",
            ["backend", "operation"], buckets=LATENCY_BUCKETS,
        )
        self.storage_errors = Counter(
            "tarhold_storage_errors_total",
            "Storage calls that failed (not counting NotFound and Conflict, which are answers).",
            ["backend", "operation"],
        )
        self.storage_conflicts = Counter(
            "tarhold_storage_conflicts_total", "Conditional writes that lost to a concurrent writer.",
            ["backend", "operation"],
        )
        self.storage_retries = Counter(
            "tarhold_storage_retries_total",
            "Retries botocore made of S3 and DynamoDB calls, by API operation and what failed"
            " (an AWS error code such as SlowDown or ThrottlingException, or ReadTimeoutError...).",
            ["backend", "operation", "reason"],
        )
        self.policy_refused = Counter(
            "tarhold_policy_refused_total",
            "Version and tarball requests refused (403) by the mirror policy, by reason: block,"
            " quarantine (min_age), freeze (freeze_before), unknown_age, deprecated.",
            ["reason"],
        )
        self.policy_hidden = Gauge(
            "tarhold_policy_hidden_versions",
            "Versions the mirror policy hides or replaces now, by reason, over the packages each"
            " process served lately (summed over workers).",
            ["reason"], multiprocess_mode="livesum",
        )
        self._uplink_children: dict[tuple[str, str], Any] = {}
        self.batch = RequestBatch(self)

    def uplink_event(self, uplink: str, what: str, amount: int = 1) -> None:
        """Count one event of the mirror; names UPLINK_EVENTS does not know are not exported."""
        child = self._uplink_children.get((uplink, what))
        if child is None:
            spec = UPLINK_EVENTS.get(what)
            if spec is None:
                return
            metric, label = getattr(self, spec[0]), spec[1]
            child = metric.labels(uplink, label) if label else metric.labels(uplink)
            self._uplink_children[(uplink, what)] = child
        child.inc(amount)


@cache
def metrics() -> Metrics:
    """This process's metrics, built on first use (after any PROMETHEUS_MULTIPROC_DIR is set)."""
    # prometheus_client picks its value class at import; pick again in case
    # the multiprocess directory was set after that (tarhold serve --workers).
    values.ValueClass = values.get_value_class()
    return Metrics()


class RequestBatch:
    """Request observations of this process, gathered without locks and moved
    into the Prometheus metrics by `flush()`.

    A Prometheus update takes a lock (or writes a file, with workers); six of
    them per request cost more than a cached packument answer. So a request
    only adds to plain numbers here, and `/-/metrics` flushes before it
    renders; with workers, each also flushes every FLUSH_INTERVAL seconds so
    that whichever worker answers the scrape reads the others' recent counts
    (`metrics_endpoint.flush_ctx`).
    """

    def __init__(self, m: Metrics) -> None:
        self.m = m
        self.in_flight = 0
        self.publishes = 0
        # (route, method, status) -> [requests, seconds, bytes, requests per latency bucket]
        self.pending: dict[tuple[str, str, int], list[Any]] = {}
        self.file_bytes: dict[str, int] = {}  # route -> bytes sent by sendfile after the request was counted

    def record(self, route: str, method: str, status: int, seconds: float, size: int) -> None:
        entry = self.pending.get((route, method, status))
        if entry is None:
            entry = self.pending[(route, method, status)] = [0, 0.0, 0, [0] * len(UPPER_BOUNDS)]
        entry[0] += 1
        entry[1] += seconds
        entry[2] += size
        entry[3][bisect_left(UPPER_BOUNDS, seconds)] += 1

    def flush(self, scraping: bool = False) -> None:
        """Move the pending counts into the metrics; `scraping`: called by a scrape, which is not counted in flight."""
        m = self.m
        pending, self.pending = self.pending, {}
        for (route, method, status), (count, seconds, size, buckets) in pending.items():
            m.requests.labels(route, method if method in METHODS else "other", str(status)).inc(count)
            histogram = m.duration.labels(route)
            # Histogram.observe() takes one value; these are its own per-bucket
            # counters (non-cumulative, as observe() keeps them) and its sum.
            for value, n in zip(histogram._buckets, buckets):
                if n:
                    value.inc(n)
            histogram._sum.inc(seconds)
            if size:
                m.response_bytes.labels(route).inc(size)
        file_bytes, self.file_bytes = self.file_bytes, {}
        for route, size in file_bytes.items():
            m.response_bytes.labels(route).inc(size)
        if self.publishes:
            m.publishes.inc(self.publishes)
            self.publishes = 0
        m.in_flight.set(self.in_flight - 1 if scraping else self.in_flight)
