"""How the fake upstream registry answers a request (see `tests.support.fake_upstream`).

`UpstreamServing` is the serving half of `FakeUpstream`: it routes a request
(packument, manifest, tarball, search, dist-tags, audit, ping), applies the
injected faults in their fixed order (recorded → stall → down → auth → fail
→ served), renders each packument's bytes once per change, and shapes
tarball bodies (drop, corrupt, no length, slow). The state it serves from is
set up by `FakeUpstream`'s public methods.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.support.fake_upstream_docs import (
    ATTESTATIONS_PATH,
    Doc,
    PackageRecord,
    abbreviate,
    next_time,
    render_packument,
)
from tests.support.fake_upstream_sets import (
    bulk_advisories,
    quick_audit,
    search_results,
)

HOST = "127.0.0.1"
ABBREVIATED_TYPE = "application/vnd.npm.install-v1+json"
TARBALL_CHUNK = 16 * 1024
SHUTDOWN_TIMEOUT = 1.0  # stalls and trickles end on stop(); nothing should take this long
FLUSH_TIMEOUT = 2.0


@dataclass
class RecordedRequest:
    """One request the fake received, whatever became of it.

    `path` is the request target as sent (prefix, percent-encoding and query
    string included); `headers` a case-insensitive copy, Authorization kept;
    `time` from `time.monotonic()`. `kind` is what it asked for: packument,
    manifest, tarball, dist-tags, search, audit, ping or other; `name` and
    `version` say which package and tarball; `status` is what was answered
    (None while in progress, or when the connection was cut before the headers
    went out, as a stall ended by stop() is).
    """

    method: str
    path: str
    headers: CIMultiDictProxy[str]
    time: float
    body: bytes = b""
    kind: str = "other"
    name: str | None = None
    version: str | None = None
    status: int | None = None


@dataclass
class _Rendered:
    """A packument's served bytes, built once per change (and per base URL)."""

    base_url: str
    full: bytes
    full_etag: str
    abbreviated: bytes
    abbreviated_etag: str
    last_modified: datetime


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [candidate.strip().removeprefix("W/") for candidate in header.split(",")]
    return "*" in candidates or etag in candidates


def _json(status: int, doc: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers)


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"error": message})


class UpstreamServing:
    """The request handling of `FakeUpstream`, over the state its methods set."""

    prefix: str
    gzip: bool
    requests: list[RecordedRequest]
    _port: int
    _started_once: bool
    _stopping: asyncio.Event
    _packages: dict[str, PackageRecord]
    _rendered: dict[str, _Rendered]
    _clock: int
    _auth: str | None
    _audit_enabled: bool
    _fail: dict[str, int]
    _stall: dict[str, float]
    _drop: dict[tuple[str, str], int]
    _corrupt: set[tuple[str, str]]
    _chunked: set[tuple[str, str]]
    _slow: dict[tuple[str, str], tuple[int, float]]
    _down: bool

    @property
    def port(self) -> int:
        if not self._started_once:
            raise RuntimeError("FakeUpstream has no port before start()")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT{prefix}`, no trailing slash."""
        return f"http://{HOST}:{self.port}{self.prefix}"

    def packument(self, name: str) -> Doc:
        """The full document as served now (a fresh copy)."""
        doc: Doc = orjson.loads(self._render(name).full)
        return doc

    def packument_bytes(self, name: str, *, abbreviated: bool = False) -> bytes:
        """The exact bytes served for `name` (the ETag is a hash of these)."""
        rendered = self._render(name)
        return rendered.abbreviated if abbreviated else rendered.full

    def _tick(self) -> str:
        self._clock += 1
        return next_time(self._clock)

    def _render(self, name: str) -> _Rendered:
        record = self._packages[name]
        cached = self._rendered.get(name)
        if cached is not None and cached.base_url == self.url:
            return cached
        doc = render_packument(record, self.url)
        full = orjson.dumps(doc)
        abbreviated = orjson.dumps(abbreviate(doc))
        rendered = _Rendered(
            base_url=self.url,
            full=full,
            full_etag=_etag(full),
            abbreviated=abbreviated,
            abbreviated_etag=_etag(abbreviated),
            last_modified=datetime.fromisoformat(record.times["modified"]),
        )
        self._rendered[name] = rendered
        return rendered

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = RecordedRequest(
            method=request.method,
            path=request.raw_path,
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            time=time.monotonic(),
        )
        self.requests.append(recorded)
        if request.can_read_body:
            recorded.body = await request.read()
        response = await self._answer(request, recorded)
        aborted = request.transport is None or request.transport.is_closing()
        # An answer cut off before its headers went out was never received.
        recorded.status = response.status if response.prepared or not aborted else None
        return response

    async def _answer(self, request: web.Request, recorded: RecordedRequest) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        if raw != self.prefix and not raw.startswith(self.prefix + "/"):
            return _error(404, "Not found")
        raw_rest = raw[len(self.prefix) :] or "/"
        rest = unquote(raw_rest)
        parts = rest.lstrip("/").split("/")
        tail: list[str] = []
        if rest.startswith("/-/"):
            recorded.kind = _special_kind(rest)
            if recorded.kind == "dist-tags":
                recorded.name = rest[len("/-/package/") : -len("/dist-tags")]
            elif recorded.kind == "attestations":
                recorded.name, _, recorded.version = rest.removeprefix(ATTESTATIONS_PATH).rpartition("@")
        elif parts[0].startswith("@"):
            recorded.name, tail = "/".join(parts[:2]), parts[2:]
            recorded.kind = _package_kind(tail) if len(parts) >= 2 and parts[1] else "other"
        else:
            recorded.name, tail = parts[0], parts[1:]
            recorded.kind = _package_kind(tail) if parts[0] else "other"

        keys = [key for key in (recorded.name, raw_rest, rest) if key]
        stall = next((self._stall[key] for key in keys if key in self._stall), None)
        if stall is not None and await self._interrupted(stall):
            return self._abort(request)
        if self._down:
            return _error(503, "Service Unavailable")
        if self._auth is not None and request.headers.get(hdrs.AUTHORIZATION) != self._auth:
            return _json(401, {"error": "authentication required"}, {"WWW-Authenticate": 'Basic realm="fake-upstream"'})
        status = next((self._fail[key] for key in keys if key in self._fail), None)
        if status is not None:
            return _error(status, _reason(status))

        if recorded.kind in ("packument", "manifest", "tarball"):
            assert recorded.name is not None
            return await self._package_route(request, recorded, recorded.name, tail)
        return self._special_route(request, recorded, rest)

    async def _package_route(
        self, request: web.Request, recorded: RecordedRequest, name: str, tail: list[str]
    ) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return _error(405, "Method not allowed")
        record = self._packages.get(name)
        if record is None:
            return _error(404, "Not found")
        if recorded.kind == "packument":
            return self._serve_packument(request, name)
        if recorded.kind == "manifest":
            wanted = record.dist_tags.get(tail[0], tail[0])
            doc = self.packument(name)["versions"].get(wanted)
            return _json(200, doc) if doc is not None else _error(404, "Not found")
        version = record.version_for_file(tail[1])
        if version is None:
            return _error(404, "Not found")
        recorded.version = version
        return await self._serve_tarball(request, name, version)

    def _serve_packument(self, request: web.Request, name: str) -> web.StreamResponse:
        rendered = self._render(name)
        if ABBREVIATED_TYPE in request.headers.get(hdrs.ACCEPT, ""):
            body, etag, content_type = rendered.abbreviated, rendered.abbreviated_etag, ABBREVIATED_TYPE
        else:
            body, etag, content_type = rendered.full, rendered.full_etag, "application/json"
        headers = {
            hdrs.ETAG: etag,
            hdrs.LAST_MODIFIED: format_datetime(rendered.last_modified, usegmt=True),
            hdrs.CACHE_CONTROL: "public, max-age=300",
            hdrs.VARY: "Accept, Accept-Encoding",
        }
        if _not_modified(request, etag, rendered.last_modified):
            return web.Response(status=304, headers=headers)
        response = web.Response(body=body, content_type=content_type, headers=headers)
        if self.gzip:
            response.enable_compression()
        return response

    async def _serve_tarball(self, request: web.Request, name: str, version: str) -> web.StreamResponse:
        key = (name, version)
        data = self._packages[name].tarballs[version]
        if key in self._corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        headers = {
            hdrs.CONTENT_TYPE: "application/octet-stream",
            hdrs.ETAG: _etag(data),
            hdrs.CACHE_CONTROL: "public, immutable, max-age=31557600",
        }
        if request.method == "HEAD":
            return web.Response(body=data, headers=headers)
        response = web.StreamResponse(headers=headers)
        if key in self._chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(data)
        await response.prepare(request)

        drop = self._drop.get(key)
        if drop is not None:
            await response.write(data[:drop])
            await self._flush(request)
            return self._abort(request, response)
        chunk, delay = self._slow.get(key, (TARBALL_CHUNK, 0.0))
        for start in range(0, len(data), chunk):
            await response.write(data[start : start + chunk])
            if delay and start + chunk < len(data) and await self._interrupted(delay):
                return self._abort(request, response)
        await response.write_eof()
        return response

    def _special_route(self, request: web.Request, recorded: RecordedRequest, rest: str) -> web.StreamResponse:
        if recorded.kind == "ping":
            return _json(200, {})
        if recorded.kind == "search" and request.method in ("GET", "HEAD"):
            query = request.query
            size = min(max(int(query.get("size", "20") or 20), 1), 250)
            offset = max(int(query.get("from", "0") or 0), 0)
            docs = [self.packument(name) for name in sorted(self._packages)]
            return _json(200, search_results(docs, query.get("text", ""), size, offset))
        if recorded.kind == "keys" and request.method in ("GET", "HEAD"):
            keys = self.signing_keys()
            return _json(200, {"keys": keys}) if keys else _error(404, "Not found")
        if recorded.kind == "attestations" and request.method in ("GET", "HEAD"):
            record = self._packages.get(recorded.name or "")
            found = record.attestations.get(recorded.version or "") if record else None
            return _json(200, {"attestations": found}) if found else _error(404, "Not found")
        if recorded.kind == "dist-tags" and request.method in ("GET", "HEAD"):
            record = self._packages.get(recorded.name or "")
            return _json(200, record.dist_tags) if record else _error(404, "Not found")
        if recorded.kind == "audit" and self._audit_enabled and request.method == "POST":
            try:
                body = orjson.loads(recorded.body or b"{}")
            except orjson.JSONDecodeError:
                return _error(400, "invalid JSON body")
            answer = bulk_advisories(body) if rest.endswith("/bulk") else quick_audit(body)
            return _json(200, answer)
        return _error(404, "Not found")

    async def _interrupted(self, seconds: float) -> bool:
        """Sleep `seconds` without blocking the loop; True when stop() cut it short."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _flush(self, request: web.Request) -> None:
        """Wait until what was written has left the transport's buffer, so the
        client really receives it before the connection goes.
        """
        transport = request.transport
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while transport is not None and transport.get_write_buffer_size() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def _abort(self, request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
        """Close the connection under the answer; aiohttp then finds the
        transport closing when it finishes the response and lets it go quietly.
        """
        if request.transport is not None:
            request.transport.abort()
        return response if response is not None else web.Response(status=503)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "failed"


def _package_kind(tail: list[str]) -> str:
    if not tail:
        return "packument"
    if len(tail) == 1 and tail[0]:
        return "manifest"
    if len(tail) == 2 and tail[0] == "-" and tail[1].endswith(".tgz"):
        return "tarball"
    return "other"


def _special_kind(rest: str) -> str:
    if rest == "/-/ping":
        return "ping"
    if rest == "/-/v1/search":
        return "search"
    if rest in ("/-/npm/v1/security/advisories/bulk", "/-/npm/v1/security/audits/quick"):
        return "audit"
    if rest.startswith("/-/package/") and rest.endswith("/dist-tags"):
        return "dist-tags"
    if rest == "/-/npm/v1/keys":
        return "keys"
    if rest.startswith(ATTESTATIONS_PATH):
        return "attestations"
    return "other"


def _not_modified(request: web.Request, etag: str, last_modified: datetime) -> bool:
    if_none_match = request.headers.get(hdrs.IF_NONE_MATCH)
    if if_none_match is not None:
        return _etag_matches(if_none_match, etag)
    if_modified_since = request.headers.get(hdrs.IF_MODIFIED_SINCE)
    if if_modified_since is None:
        return False
    try:
        return last_modified <= parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
