"""Request metrics: every request counted, timed and sized by the shape of its route.

A request is labelled with its route's shape (`packument`, `tarball`, `login`,
...), never a package name, so the labels stay few (see `metrics.py`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from registry.http.metrics import RequestBatch, metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PATH_LABELS = 4096  # package paths whose label is remembered (then forgotten all at once)

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
