"""Anonymous reads of held bytes, answered again before the app routes the request.

Most of what a CI fleet asks is the same few thousand anonymous GETs: a
packument the registry has rendered, a small tarball it holds in memory. The
handler's answer is a few microseconds of work; routing, the middlewares (a
request id, auth, metrics, errors) and the response-prepare signal around it
were three quarters of the CPU per request (bench: small tarballs at 43% of
bare aiohttp serving the same bytes, 97 against 40 µs of server CPU each).

So the packument and tarball handlers, having answered an anonymous GET from
held bytes, `remember` the answer with what it depends on, and the server
(`install`, ahead of the app) answers the same request again from that while
it still holds:

- a packument: `Packages.hot` still gives the very rendering (its TTL, a
  change made here, the policy's generation and a quarantine's end, exactly
  as the handler's own hot path checks them), or once the TTL ran out,
  `Packages.revalidate` confirms it with storage, as the handler would;
- a tarball: the tarball cache still holds the very bytes, within their TTL
  or confirmed by storage after it (`tarballs.still_held`, the checks
  `find_tarball` makes of held bytes: the packument lists the version, no
  policy can touch the package); a change made here drops them at once;
- both: the organizations snapshot is the one the access decision read (an
  org's visibility decides whether anonymous may read), and the `packages:`
  rules are the config's, fixed for the process.

Anything else (a token, a partial or date-conditional request, HEAD, a query,
another `Accept`, `Accept-Encoding` or host than the remembered one) goes to
the app; an If-None-Match naming the held ETag gets the app's 304. A replay is
counted in the metrics, stamps the last access, gets a request id and the
access log line, as the app's answer would.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from registry.domain.caches import HeldTarball
from registry.domain.errors import RegistryError
from registry.domain.orgs import OrgDirectory
from registry.domain.packument_render import Rendered
from registry.domain.tarballs import still_held
from registry.http.appkeys import MIRROR, PACKAGES
from registry.http.logs import request_id_of
from registry.http.metrics import metrics
from registry.http.org_directory import ORGS
from registry.http.usage import ACCESS
from storage.base import StorageError

LOG = logging.getLogger(__name__)

# Bytes of bodies the entries point at. They are shared with the render and
# tarball caches, so this costs memory only for bodies those have dropped
# (an entry found stale is dropped at once).
REMEMBERED_BYTES = 32 * 1024 * 1024
# Bodies up to this size (larger ones go out a slice at a time, by the app).
LARGEST_BODY = 1024 * 1024
# A request carrying any of these is the app's: credentials, a partial GET, a date condition.
APP_HEADERS = ("Authorization", "If-Modified-Since", "Range")
# `_still_right`: past its TTL, the entry holds once storage confirms it.
LAPSED = object()
# Not in a 304: it has no body.
BODY_HEADERS = frozenset({"Content-Type", "Content-Encoding"})


@dataclass(frozen=True)
class Remembered:
    name: str
    route: str  # the metrics label: packument or tarball
    body: bytes
    headers: tuple[tuple[str, str], ...]
    etag: str
    orgs: OrgDirectory  # the one the access decision read
    rendered: Rendered | None = None  # a packument: the rendering `hot` must still give
    base: str = ""
    variant: str = ""
    filename: str = ""  # a tarball: its file, and the held bytes that must still be fresh
    held: HeldTarball | None = None
    generation: int = 0  # the policy's, for a tarball


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (the 304 of every held answer)."""
    if not if_none_match:
        return False
    return etag in {tag.strip() for tag in if_none_match.split(",")}


def request_key(request: web.BaseRequest) -> tuple[str | None, ...] | None:
    """What an anonymous GET's answer depends on: the path as sent, the variant (Accept),
    the encoding, and the base URL of tarball links (Host, X-Forwarded-*). None when the
    app must answer it. If-None-Match is not in it: a replay answers it like the app."""
    if request.method != "GET":
        return None
    headers = request.headers
    for name in APP_HEADERS:
        if name in headers:
            return None
    path = request.raw_path
    if "?" in path:
        return None
    get = headers.get
    return (path, get("Accept"), get("Accept-Encoding"), get("Host"), get("X-Forwarded-Proto"),
            get("X-Forwarded-Host"))


class FastReads:
    """The remembered answers of one app, and the server hook that replays them."""

    def __init__(self, app: web.Application) -> None:
        # What the replays read, looked up once (create_app sets them all before this).
        self.packages = app[PACKAGES]
        self.mirror = app[MIRROR]
        self.orgs = app[ORGS]
        self.recorder = app.get(ACCESS)
        # A plain dict, emptied when its bodies pass REMEMBERED_BYTES: an LRU's
        # bookkeeping would cost a tenth of a replay.
        self.entries: dict[tuple[str | None, ...], Remembered] = {}
        self.remembered_bytes = 0
        self.batch = metrics().batch
        self.hits = 0

    # -- remembering (the handlers) ---------------------------------------------

    def remember_packument(
        self, request: web.Request, response: web.StreamResponse, name: str, rendered: Rendered, base: str,
        variant: str,
    ) -> None:
        """The handler served `rendered` (what `Packages.hot(name, base, variant)` gives) as `response`."""
        self._remember(request, response, name, "packument", rendered=rendered, base=base, variant=variant)

    def remember_tarball(self, request: web.Request, response: web.StreamResponse, name: str, filename: str) -> None:
        """The handler served the held bytes of `filename` as `response`."""
        packages = self.packages
        held = packages.tarballs.get(name, filename)
        policy = packages.policy
        if held is None or policy.active and not policy.policy_for(name).is_noop:
            return
        self._remember(
            request, response, name, "tarball", filename=filename, held=held, generation=policy.generation
        )

    def _remember(
        self, request: web.Request, response: web.StreamResponse, name: str, route: str, **depends: Any
    ) -> None:
        if request.get("identity") is not None or response.status != 200 or type(response) is not web.Response:
            return
        body = response.body
        if type(body) is not bytes or len(body) > LARGEST_BODY or response.prepared:
            return
        key = request_key(request)
        if key is None:
            return
        held = depends.get("held")
        if held is not None and held.body is not body:
            return
        etag = response.headers.get("ETag")
        if etag is None:
            return
        headers = (*response.headers.items(), ("Server", "tarhold"))
        entry = Remembered(name, route, body, headers, etag, self.orgs.directory, **depends)
        if self.remembered_bytes + len(body) > REMEMBERED_BYTES:
            self.entries.clear()
            self.remembered_bytes = 0
        old = self.entries.get(key)
        if old is not None:
            self.remembered_bytes -= len(old.body)
        self.entries[key] = entry
        self.remembered_bytes += len(body)

    # -- replaying (the server) -------------------------------------------------

    def install(self, server: web.Server) -> None:
        """Answer remembered requests ahead of the server's handler (the app)."""
        handle = server.request_handler

        async def request_handler(request: web.BaseRequest) -> web.StreamResponse:
            try:
                response = await self.replay(request)
            except Exception:  # a bug here must cost a replay, never the request
                LOG.exception("could not replay a remembered answer")
                response = None
            if response is None:
                return await handle(request)
            return response

        server.request_handler = request_handler

    async def replay(self, request: web.BaseRequest) -> web.Response | None:
        """The remembered answer to `request` if it still holds, else None."""
        if not self.entries:
            return None
        start = time.perf_counter()
        key = request_key(request)
        if key is None:
            return None
        entry = self.entries.get(key)
        if entry is None:
            return None
        uplink = self._still_right(entry)
        if uplink is LAPSED:
            uplink = await self._confirmed(entry)
        if uplink is False:
            self.forget(key)
            return None
        headers = request.headers
        if_none_match = headers.get("If-None-Match")
        if if_none_match is None:
            response = web.Response(body=entry.body, headers=entry.headers)
        elif etag_matches(if_none_match, entry.etag):
            response = web.Response(status=304, headers=[h for h in entry.headers if h[0] not in BODY_HEADERS])
        else:
            return None  # the app answers (a 200, or its own judgement of the tags)
        request_id = request_id_of(headers)
        request["request_id"] = request_id
        response.headers["X-Request-Id"] = request_id
        if uplink is not None:
            self.mirror.stats.add(uplink, "hits")
        if self.recorder is not None:
            self.recorder.note(entry.name)
        self.hits += 1
        size = len(entry.body) if response.status == 200 else 0
        self.batch.record(entry.route, "GET", response.status, time.perf_counter() - start, size)
        return response

    def forget(self, key: tuple[str | None, ...]) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.remembered_bytes -= len(entry.body)

    def _still_right(self, entry: Remembered) -> Any:
        """False when `entry` no longer holds, LAPSED when storage must confirm it first
        (its TTL ran out); else the uplink a packument came from (None: local)."""
        if self.orgs.directory is not entry.orgs:
            return False
        packages = self.packages
        if entry.rendered is not None:
            hot = packages.hot(entry.name, entry.base, entry.variant)
            if hot is None:
                return LAPSED  # or changed: `revalidate` tells
            return hot[1] if hot[0] is entry.rendered else False
        held = entry.held
        tarballs = packages.tarballs
        if packages.policy.generation != entry.generation or tarballs.get(entry.name, entry.filename) is not held:
            return False
        return None if tarballs.is_fresh(held) else LAPSED

    async def _confirmed(self, entry: Remembered) -> Any:
        """`_still_right` once storage was asked, as the handler would ask it: False, or the uplink."""
        packages = self.packages
        try:
            if entry.rendered is not None:
                hot = await packages.revalidate(entry.name, entry.base, entry.variant)
                return hot[1] if hot is not None and hot[0] is entry.rendered else False
            assert entry.held is not None
            return None if await still_held(packages, entry.name, entry.filename, entry.held) else False
        except (RegistryError, StorageError):
            return False  # the app meets it again and answers it as it should


FAST_READS = web.AppKey("fast_reads", FastReads)
