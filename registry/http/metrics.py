"""Prometheus metrics: what `/-/metrics` exports, and the hooks that feed it.

Every name starts with `tarhold_`. Labels stay low-cardinality: a request is
labelled with the *shape* of its route (`packument`, `tarball`, ...), never a
package name; uplinks and storage backends are few and named in the config.

The metric objects are built once per process, on first use rather than at
import, so `tarhold serve --workers N` can set `PROMETHEUS_MULTIPROC_DIR`
before any of them exists. With that variable set, every process writes its
values to files in that directory and `/-/metrics` merges them
(`MultiProcessCollector`); without it, the process's default registry is
served (which adds the `process_*` and `python_*` metrics).

Storage calls are timed by proxies around the store and database
(`metrics_storage.py`); uplink events arrive through `Mirror.stats`.

`/-/metrics` is readable without credentials, like `/-/ping`: it holds counts
and route shapes, no package names or users. Keep it off the public internet
at the network (a load balancer rule, a NetworkPolicy) if that matters.
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import prometheus_client
from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from uplinks.breaker import CircuitBreaker

if TYPE_CHECKING:
    from uplinks.mirror import Mirror

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Packuments from the in-process cache answer in well under a millisecond;
# a cold tarball through an uplink can take seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UPPER_BOUNDS = (*LATENCY_BUCKETS, float("inf"))
FLUSH_INTERVAL = 1.0  # seconds, with workers (see RequestBatch)
PATH_LABELS = 4096  # package paths whose label is remembered (then forgotten all at once)
CIRCUIT_STATES = {"closed": 0, "open": 1, "half-open": 2}
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
# Mirror.stats event names to (metric attribute, label value); see UplinkStats.
UPLINK_EVENTS = {
    "hits": ("uplink_cache", "hit"),
    "misses": ("uplink_cache", "miss"),
    "stale": ("uplink_cache", "stale"),
    "revalidated": ("uplink_cache", "revalidated"),
    "errors": ("uplink_errors", "fetch"),
    "integrity_errors": ("uplink_errors", "integrity"),
    "tarball_misses": ("uplink_tarballs", None),
    "upstream_bytes": ("uplink_bytes", None),
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
        self._uplink_children: dict[tuple[str, str], Any] = {}
        self.batch = RequestBatch(self)

    def uplink_event(self, uplink: str, what: str, amount: int = 1) -> None:
        """Count one Mirror.stats event; names UPLINK_EVENTS does not know are not exported."""
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


# -- routes -------------------------------------------------------------------

FIXED_ROUTES = (
    # (prefix of the resource's path, route label); first match wins.
    ("/-/ping", "ping"), ("/health", "health"), ("/-/metrics", "metrics"),
    ("/-/user/org.couchdb.user:", "login"), ("/-/v1/login", "login"), ("/-/v1/done", "login"),
    ("/-/whoami", "whoami"), ("/-/user/token/", "token"), ("/-/npm/v1/tokens", "token"),
    ("/-/npm/v1/user", "user"), ("/-/v1/search", "search"), ("/-/npm/v1/security/", "audit"),
    ("/-/tarhold/", "admin"), ("/-/package/", "dist_tags"),
    ("/-/web", "web"), ("/-/docs", "web"), ("/-/static/", "web"), ("/-/openapi.json", "web"),
)


def fixed_route(path: str) -> str:
    """The label of a registered non-package route, from its path pattern."""
    if path == "/":
        return "web"
    for prefix, label in FIXED_ROUTES:
        if path.startswith(prefix):
            return label
    return "other"


def package_route(method: str, path: str) -> str:
    """The label of a request to the package catch-all, from its path shape (`/{name}[/...]`)."""
    if len(path) < 2 or path.startswith("/-/"):
        return "other"
    parts = path[1:].split("/")
    # `/@scope/name/...` spends two segments on the name; `/@scope%2fname` one.
    scoped = parts[0].startswith("@") and "%2f" not in parts[0].lower() and len(parts) > 1
    rest = parts[2:] if scoped else parts[1:]
    size = len(rest)
    if size == 0:
        if method in ("GET", "HEAD"):
            return "packument"
        return "publish" if method == "PUT" else "other"
    head = rest[0]
    if head == "-rev" and size == 2:
        # npm owner, and the first half of unpublishing one version.
        return "change" if method == "PUT" else "unpublish" if method == "DELETE" else "other"
    if head == "-" and size == 2 and method in ("GET", "HEAD"):
        return "tarball"
    if head == "-" and size == 4 and rest[2] == "-rev" and method == "DELETE":
        return "unpublish"
    if size == 1 and head and not head.startswith("-"):
        return "manifest" if method in ("GET", "HEAD") else "dist_tags" if method == "PUT" else "other"
    return "other"


class RequestBatch:
    """Request observations of this process, gathered without locks and moved
    into the Prometheus metrics by `flush()`.

    A Prometheus update takes a lock (or writes a file, with workers); six of
    them per request cost more than a cached packument answer. So a request
    only adds to plain numbers here, and `/-/metrics` flushes before it
    renders; with workers, each also flushes every FLUSH_INTERVAL seconds so
    that whichever worker answers the scrape reads the others' recent counts.
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


def metrics_middleware(prefix: str = "") -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Count, time and size every request; put it first so it sees the final status."""
    batch = metrics().batch
    resource_labels: dict[Any, str | None] = {}  # resource -> label; None: the package catch-all
    package_labels: dict[tuple[str, str], str] = {}  # (method, target) -> label, for hot paths

    def label_of(request: web.Request) -> str:
        resource = request.match_info.route.resource
        try:
            label = resource_labels[resource]
        except KeyError:
            path = resource.canonical if resource is not None else ""
            if prefix and path.startswith(prefix):
                path = path[len(prefix):] or "/"
            if resource is None:
                label = "other"  # the router found nothing (405, or a bad path)
            else:
                label = None if path.startswith("/{") else fixed_route(path)
            resource_labels[resource] = label
        if label is not None:
            return label
        # The request line's target as sent: far cheaper than building rel_url.
        target = request.raw_path
        label = package_labels.get((request.method, target))
        if label is None:
            path = target.partition("?")[0]
            if prefix and path.startswith(prefix):
                path = path[len(prefix):]
            label = package_route(request.method, path)
            if len(package_labels) >= PATH_LABELS:
                package_labels.clear()
            package_labels[(request.method, target)] = label
        return label

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        batch.in_flight += 1
        route = label_of(request)
        status, size = 499, 0  # 499: the client went away first (nginx's convention)
        try:
            response = await handler(request)
            status = response.status
            if request.method == "HEAD":
                pass
            elif response.prepared:
                # Streamed: the declared length, else what went out (headers included).
                length = response.content_length
                size = length if length is not None else response.body_length
            elif isinstance(response, web.FileResponse):
                _count_file_bytes(response, batch, route)  # its size is known once it is sent
            else:
                size = response.content_length or 0
                if request.get("published"):
                    batch.publishes += 1
            return response
        except web.HTTPException as exc:  # redirects and 304s the error middleware lets through
            status = exc.status
            raise
        finally:
            batch.in_flight -= 1
            batch.record(route, request.method, status, time.perf_counter() - start, size)

    return middleware


def _count_file_bytes(response: web.FileResponse, batch: RequestBatch, route: str) -> None:
    # aiohttp prepares a FileResponse after the middlewares returned, and only
    # then sets its Content-Length (the file's size, or the Range asked for).
    prepare = response.prepare

    async def prepare_and_count(request: web.BaseRequest) -> Any:
        writer = await prepare(request)
        size = response.content_length
        if size and response.status in (200, 206):
            batch.file_bytes[route] = batch.file_bytes.get(route, 0) + size
        return writer

    response.prepare = prepare_and_count  # type: ignore[method-assign]


# -- uplinks ------------------------------------------------------------------


class ObservedCircuitBreaker(CircuitBreaker):
    """A CircuitBreaker that mirrors its state into tarhold_uplink_circuit_state as it changes."""

    def __init__(self, uplink: str, breaker: CircuitBreaker) -> None:
        super().__init__(breaker.max_fails, breaker.fail_timeout, breaker.clock)
        self._gauge = metrics().circuit.labels(uplink)
        self._shown = -1
        self.publish_state()

    def publish_state(self) -> None:
        value = CIRCUIT_STATES[self.state]
        if value != self._shown:
            self._shown = value
            self._gauge.set(value)

    def allow(self) -> bool:
        allowed = super().allow()
        self.publish_state()
        return allowed

    def success(self) -> None:
        super().success()
        self.publish_state()

    def failure(self) -> None:
        super().failure()
        self.publish_state()


def observe_mirror(mirror: Mirror) -> None:
    """Swap the mirror's breakers for observed ones and create its uplinks' series at 0."""
    m = metrics()
    for name, breaker in list(mirror.breakers.items()):
        mirror.breakers[name] = ObservedCircuitBreaker(name, breaker)
        for what in UPLINK_EVENTS:
            m.uplink_event(name, what, 0)


def uplink_health(mirror: Mirror) -> dict[str, dict[str, Any]]:
    """Each uplink's state for /health, from the breaker alone (no request goes upstream).

    An open or half-open circuit is "degraded", not an error: cached copies
    are still served, so a load balancer should keep the instance.
    """
    report: dict[str, dict[str, Any]] = {}
    for name, breaker in mirror.breakers.items():
        state = breaker.state
        entry: dict[str, Any] = {
            "status": "ok" if state == "closed" else "degraded",
            "circuit": state,
            "errors": mirror.stats.counts.get(f"{name}:errors", 0),
        }
        last = mirror.stats.last_error.get(name)
        if last is not None:
            entry["last_error_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last))
        report[name] = entry
    return report


# -- the endpoint -------------------------------------------------------------


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /-/metrics: the Prometheus text format, merged over workers when there are several."""
    from registry.http.appkeys import MIRROR

    mirror = request.app.get(MIRROR)
    if mirror is not None:
        # An open circuit turns half-open with time alone, not on a call.
        for breaker in mirror.breakers.values():
            if isinstance(breaker, ObservedCircuitBreaker):
                breaker.publish_state()
    metrics().batch.flush(scraping=True)
    body = generate_latest(collector_registry())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def collector_registry(environ: Mapping[str, str] = os.environ) -> Any:
    """What to render: every worker's files in multiprocess mode, else this process's registry."""
    metrics()
    if environ.get(MULTIPROC_ENV):
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return prometheus_client.REGISTRY


def setup(app: web.Application) -> None:
    """Register GET /-/metrics (before the package catch-all), and the flushes workers need."""
    app.router.add_get("/-/metrics", metrics_handler)
    app.cleanup_ctx.append(flush_ctx)


async def flush_ctx(app: web.Application) -> AsyncIterator[None]:
    """With workers, move this worker's request counts into the shared files every second."""
    if not os.environ.get(MULTIPROC_ENV):
        yield
        return
    batch = metrics().batch

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            batch.flush()

    task = asyncio.create_task(flush_forever())
    try:
        yield
    finally:
        task.cancel()
        batch.flush()
