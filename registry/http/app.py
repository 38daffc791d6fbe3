"""The application factory: `create_app(config)` wires storage, routes and middleware."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from registry.config import Config
from registry.domain.errors import RegistryError
from registry.domain.mirror_policy import MirrorPolicy
from registry.domain.packages import Packages
from registry.domain.rules import rule_index, storage_folder
from registry.domain.secret import ensure_secret
from registry.http import (
    api_docs,
    bootstrap,
    metrics_endpoint,
    org_directory,
    routes_admin,
    routes_admin_orgs,
    routes_attestations,
    routes_auth,
    routes_keys,
    routes_org_access,
    routes_orgs,
    routes_packages,
    routes_policy,
    routes_stage,
    routes_trust,
    routes_uplink,
    sign_in,
)
from registry.http import routes_search as search
from registry.http import usage as access
from registry.http import web as web_ui
from registry.http.appkeys import CONFIG, DATABASE, MIRROR, PACKAGES, SECRET, STORE
from registry.http.auth import log_path
from registry.http.background import running
from registry.http.fast_reads import FAST_READS, FastReads
from registry.http.logs import REQUEST_ID, REQUEST_ID_HEADER, request_id_of
from registry.http.metrics_middleware import metrics_middleware
from registry.http.metrics_policy import MetricsPolicyEvents
from registry.http.metrics_storage import instrument_storage, recent_trouble
from registry.http.uplink_mirror import build_mirror, uplink_health
from storage.backends import build_backends
from storage.base import NotFound, StorageError

LOG = logging.getLogger(__name__)
ACCESS_LOG = logging.getLogger("tarhold.access")


HEALTH_TIMEOUT = 5.0
DROPPED_HEADERS = frozenset({"content-type", "content-length"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, one access line, and every failure rendered as `{"error": ...}`."""
    request_id = request_id_of(request.headers)
    request["request_id"] = request_id
    token = REQUEST_ID.set(request_id)
    response: web.StreamResponse
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = exc.reason if exc.status != 404 else "not found"
            kept = {k: v for k, v in exc.headers.items() if k.lower() not in DROPPED_HEADERS}
            response = json_error(exc.status, message, kept)
        except RegistryError as exc:
            response = json_error(exc.status, exc.message, exc.headers)
        except NotFound as exc:
            response = json_error(404, str(exc) or "not found")
        except StorageError:
            LOG.exception("storage failed")
            response = json_error(503, f"storage is unavailable (request id {request_id})")
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            path = request.get("log_path") or log_path(request.path)  # never a token
            LOG.exception("unhandled error in %s %s", request.method, path)
            response = json_error(500, f"internal error (request id {request_id})")
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        REQUEST_ID.reset(token)


class AccessLogger(AbstractAccessLogger):
    """One line per request, written after the body went out (so bytes are exact)."""

    @property
    def enabled(self) -> bool:
        # Asked once per connection: with access lines off (`log.level` above
        # info) aiohttp neither times requests for us nor calls `log`.
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, duration: float) -> None:
        request_id = request.get("request_id", "-")
        token = REQUEST_ID.set(request_id)
        try:
            user = request.get("user") or "-"
            # The auth middleware's masked path: npm logout puts a token in the URL.
            path = request.get("log_path") or log_path(request.rel_url.path)
            duration_ms = round(duration * 1000, 1)
            # body_length counts the header bytes too; prefer the body's own size.
            size = response.content_length
            if size is None:
                size = response.body_length
            self.logger.info(
                "%s %s %s %s %.1fms %s",
                request.method, path, response.status, size, duration_ms, user,
                extra={
                    "method": request.method, "path": path,
                    "status": response.status, "bytes": size,
                    "duration_ms": duration_ms, "user": user,
                },
            )
        finally:
            REQUEST_ID.reset(token)


SERVER_KWARGS = {"access_log_class": AccessLogger, "access_log": ACCESS_LOG}


async def ping(request: web.Request) -> web.Response:
    return web.json_response({})


async def health(request: web.Request) -> web.Response:
    """The store, the database and the uplinks: "ok", "degraded" (200) or "error" (503).

    A failing health check of the store or database is "error", a 503 that
    takes the instance out of a load balancer. A store or database whose
    calls lately needed retries or failed, while its check passes, is
    "degraded" (still 200): it serves, slower or with some 503s, and whoever
    watches /health or the metrics should look (see StorageTrouble).
    """
    app = request.app
    backends = {"store": app[STORE], "database": app[DATABASE]}
    results: dict[str, dict[str, Any]] = {}
    healthy = True
    for name, backend in backends.items():
        try:
            await asyncio.wait_for(backend.check_health(), HEALTH_TIMEOUT)
            results[name] = recent_trouble(backend) or {"status": "ok"}
        except (StorageError, TimeoutError) as exc:
            healthy = False
            results[name] = {"status": "error", "error": str(exc) or "timed out"}
    # Uplinks come from their circuit breakers, never from a call upstream: an
    # uplink that is down leaves the instance serving what it holds, so it is
    # "degraded" (still 200); only a failing store or database makes a 503.
    uplinks = uplink_health(app[MIRROR])
    degraded = any(r["status"] != "ok" for r in results.values()) or any(
        u["status"] != "ok" for u in uplinks.values())
    status = "error" if not healthy else "degraded" if degraded else "ok"
    return web.json_response(
        {"status": status, "checks": results, "uplinks": uplinks}, status=200 if healthy else 503
    )


async def plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """`Server: tarhold`: no Python or aiohttp version for a scanner to match."""
    response.headers["Server"] = "tarhold"


def create_app(config: Config) -> web.Application:
    """The whole registry for one config; storage opens on startup, closes on cleanup."""
    app = web.Application(
        middlewares=[metrics_middleware(config.url_prefix), error_middleware],
        client_max_size=config.max_body_size,
    )
    app[CONFIG] = config
    app.on_response_prepare.append(plain_server_header)
    store, database = build_backends(
        config.store.backend,
        path=config.store.path,
        section=config.store.section,
        folder=storage_folder(config.packages),
    )
    store, database = instrument_storage(store, database)  # tarhold_storage_* metrics
    app[STORE] = store
    app[DATABASE] = database
    app[PACKAGES] = Packages(
        store, database, config.cache, MirrorPolicy(config.policy, events=MetricsPolicyEvents()),
        classify=partial(rule_index, config.packages),
    )
    access.setup(app, database)  # last-access stamps for `tarhold gc`
    sign_in.setup(app)  # one login throttle for every channel that checks a password
    # Its failures become 502/503 RegistryErrors; its events feed tarhold_uplink_*.
    app[MIRROR] = build_mirror(app[PACKAGES], config.uplinks, config.packages)
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(policy_ctx)
    app.cleanup_ctx.append(listing_ctx)  # the package list's index: search, the front page
    org_directory.setup(app)  # the organizations every access decision reads, kept current
    routes_keys.setup(app)  # GET /-/npm/v1/keys; the signing key once storage is open
    routes_attestations.setup(app)  # GET /-/npm/v1/attestations/{name}@{version}
    app.cleanup_ctx.append(mirror_ctx)
    app.router.add_get("/-/ping", ping)
    app.router.add_get("/health", health)
    metrics_endpoint.setup(app)  # GET /-/metrics, anonymous like /-/ping
    routes_auth.install(app)
    routes_admin.setup(app)
    routes_admin_orgs.setup(app)  # /-/tarhold/orgs: every org, as stored
    routes_policy.setup(app)  # /-/tarhold/policy: run-time block/allow rules
    api_docs.setup(app)
    bootstrap.setup(app)  # reads TARHOLD_ADMIN_*; creates the first admin once storage is open
    search.setup(app)
    routes_uplink.setup(app)
    routes_stage.setup(app)  # /-/stage...: npm stage
    routes_trust.setup(app)  # /-/package/{name}/trust, the OIDC exchange: before the catch-all
    routes_orgs.setup(app)  # /-/org/..., /-/team/...: npm org, npm team
    routes_org_access.setup(app)  # npm access list|grant|revoke|get status: before the catch-all
    web_ui.setup(app)  # `/` and /-/web/...: before the catch-all
    routes_packages.setup(app)  # last: its catch-all route takes whatever is left
    app[FAST_READS] = FastReads(app)  # anonymous reads of held bytes, replayed by the server (serving.py)
    return app


async def mirror_ctx(app: web.Application) -> AsyncIterator[None]:
    mirror = app[MIRROR]
    # Every instance of one deployment shares the secret, so they share the
    # Via token that stops two registries proxying each other from looping.
    mirror.via_id = hashlib.sha256(app[SECRET].encode()).hexdigest()[:12]
    await mirror.start()
    try:
        yield
    finally:
        await mirror.close()


async def policy_ctx(app: web.Application) -> AsyncIterator[None]:
    """The run-time policy rules, loaded before the first request and kept up to date."""
    policy, database = app[PACKAGES].policy, app[DATABASE]
    await policy.reload(database)
    async with running(policy.watch(database)):
        yield


async def listing_ctx(app: web.Application) -> AsyncIterator[None]:
    """The package list's index, built before the first request and kept current."""
    listing = app[PACKAGES].listing
    await listing.load()
    async with running(listing.watch()):
        yield


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    store, database = app[STORE], app[DATABASE]
    await store.open()
    try:
        await database.open()
        try:
            app[SECRET] = await ensure_secret(database)
            yield
        finally:
            await database.close()
    finally:
        await store.close()
