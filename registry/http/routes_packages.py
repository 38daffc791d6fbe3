"""The package paths: the catch-all dispatch, and the packument and manifest GETs.

npm's URL space (`/{name}`, `/@scope%2fname`, `/@scope/name`, `/-rev/...`,
`/-/{file}.tgz`) does not fit a route table, so one catch-all route parses the
still-encoded path and dispatches on method and shape: tarballs to
routes_tarballs, publishes to routes_publish, other changes to routes_changes.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from registry.domain.access import Action
from registry.domain.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFoundError,
    RegistryError,
)
from registry.domain.mirror_policy import UNCHANGED, shown_doc
from registry.domain.names import validate_package_name
from registry.domain.packages import ABBREVIATED, FULL, Current, Rendered, is_mirrored
from registry.domain.packument_views import rewrite_manifest, version_for
from registry.domain.rules import PackageRule
from registry.http import routes_changes as changes
from registry.http.access import authorize, rule_of
from registry.http.appkeys import CONFIG, MIRROR, PACKAGES
from registry.http.bodies import read_object
from registry.http.fast_reads import FAST_READS, etag_matches
from registry.http.routes_publish import publish_package
from registry.http.routes_tarballs import get_tarball
from registry.http.urls import base_url, is_readable_name, split_package_path
from registry.http.usage import note_access

# Pure, repeated per request on the hot paths: remembered (the cache keys are
# request paths and header values, bounded by the LRU size).
PATHS_REMEMBERED = 8192
BASES_REMEMBERED = 256
# Bodies from this size up are written a slice at a time (SlicedBody).
SLICED_FROM = 1024 * 1024
SLICE = 256 * 1024
FILE_SLICE = 512 * 1024  # read from a file at a time (FileBody)


def wants_abbreviated(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return ABBREVIATED in accept and "application/json" not in accept.split(ABBREVIATED)[0]


class SlicedBody(Payload):
    """Held bytes, written a slice at a time, each once the socket took the one before.

    Given whole, aiohttp joins the headers and the body into a new bytes object
    (Python before 3.12.9 has no usable writelines), and the transport copies
    what the socket did not take at once: two more copies of a 20 MB packument
    per response in flight. Slices are views of the one held body.
    """

    def __init__(self, value: bytes, **kwargs: Any) -> None:
        super().__init__(value, **kwargs)
        self._size = len(value)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return bytes(self._value)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        view = memoryview(self._value)
        end = len(view) if content_length is None else min(content_length, len(view))
        for start in range(0, end, SLICE):
            await writer.write(view[start:min(start + SLICE, end)])


class FileBody(web.StreamResponse):
    """A spilled rendering (a large document's, in a file) with the headers given (its
    ETag and all: FileResponse would make its own), read and written a slice at a time.

    Not sendfile: asyncio's waits for the socket between calls, and served the 20 MB
    packument at 85 req/s where these reads (from the page cache, on the loop) reach
    120-145, with one slice held per response.
    """

    def __init__(self, path: Path, size: int, headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self.path = path
        self.content_length = size

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        # Opened before anything is sent: a missing file is still a clean 500.
        with open(self.path, "rb", buffering=0) as file:
            writer = await super().prepare(request)
            if request.method != "HEAD":
                offset, fd = 0, file.fileno()
                while chunk := os.pread(fd, FILE_SLICE, offset):
                    offset += len(chunk)
                    await self.write(chunk)
            await super().write_eof()
        return writer


def bytes_response(request: web.Request, rendered: Rendered, content_type: str) -> web.StreamResponse:
    """The pre-built bytes (gzip when accepted), or a 304: no JSON work here."""
    headers = {"ETag": rendered.etag, "Vary": "Accept, Accept-Encoding", "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("If-None-Match"), rendered.etag):
        return web.Response(status=304, headers=headers)
    # Content-Type as a plain header: cheaper than aiohttp's content_type setter.
    headers["Content-Type"] = content_type
    body = rendered.body
    if rendered.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = rendered.gzipped
    elif rendered.file is not None:
        return FileBody(rendered.file, rendered.size, headers)
    if len(body) < SLICED_FROM:
        return web.Response(body=body, headers=headers)
    headers["Content-Length"] = str(len(body))
    return web.Response(body=SlicedBody(body, content_type=content_type), headers=headers)


_bases: dict[tuple[str | None, ...], str] = {}


def cached_base_url(request: web.Request) -> str:
    """`base_url(request)`, remembered per set of the headers it reads."""
    headers = request.headers
    key = (
        headers.get("Host"), headers.get("X-Forwarded-Proto"), headers.get("X-Forwarded-Host"),
        request.scheme, request.app[CONFIG].public_url, request.app[CONFIG].url_prefix,
    )
    base = _bases.get(key)
    if base is None:
        if len(_bases) >= BASES_REMEMBERED:
            _bases.clear()
        base = _bases[key] = base_url(request)
    return base


@lru_cache(maxsize=PATHS_REMEMBERED)
def parse_package_target(raw_path: str, prefix: str) -> tuple[str, tuple[str, ...], bool] | None:
    """(name, rest, readable) of a catch-all path, or None when it names no package."""
    parsed = split_package_path(raw_path, prefix)
    if parsed is None or raw_path.startswith("/-/") or raw_path == "/-":
        return None
    return parsed.name, parsed.rest, is_readable_name(parsed.name)


def not_here(request: web.Request, name: str, rule: PackageRule | None) -> NotFoundError:
    """The 404 of a package neither published here nor found upstream, saying which uplinks
    were asked. The words depend on the name's rule and the config only, never on whether
    the package exists: a caller who may not see a package gets this very answer."""
    asked = [uplink for uplink in (rule.proxy if rule else ()) if uplink in request.app[MIRROR].uplinks]
    if len(asked) == 1:
        why = f"uplink {asked[0]} has no such package"
    elif asked:
        why = f"uplinks {', '.join(asked)} have no such package"
    elif request.app[CONFIG].uplinks:
        why = "no uplink is configured for this name"
    else:
        why = "no uplink is configured"
    return NotFoundError(f"package {name} not found: not published here, and {why}")


def readable_rule(request: web.Request, name: str) -> PackageRule:
    """`authorize` to read; a package the caller may not see is the 404 of a missing one."""
    try:
        return authorize(request, name, Action.READ).rule
    except NotFoundError:
        raise not_here(request, name, rule_of(request, name)) from None


async def resolve(request: web.Request, name: str, rule: PackageRule) -> Current | None:
    """The local document, or the uplinks' (fresh, refreshed or stale) per the rule's proxy."""
    return await request.app[MIRROR].packument(name, rule.proxy, request.headers.get("Via", ""))


def writes_back(request: web.Request, name: str) -> bool:
    """`GET /{name}?write=true` by someone who may publish it: npm will PUT the document
    back (deprecate, dist-tag, unpublish), so it gets every stored version, unfiltered."""
    if "write" not in request.query or not request.app[PACKAGES].policy.active:
        return False
    try:
        authorize(request, name, Action.PUBLISH)
    except RegistryError:
        return False
    return True


async def get_packument(request: web.Request, name: str) -> web.StreamResponse:
    rule = readable_rule(request, name)
    packages = request.app[PACKAGES]
    variant = ABBREVIATED if wants_abbreviated(request) and "write" not in request.query else FULL
    content_type = ABBREVIATED if variant == ABBREVIATED else "application/json"
    base = cached_base_url(request)
    unfiltered = writes_back(request, name)
    hot = None
    if not unfiltered:
        # Held bytes within the TTL, else once storage confirms they are still right.
        hot = packages.hot(name, base, variant) or await packages.revalidate(name, base, variant)
    if hot is not None:
        rendered, uplink = hot
        if uplink is not None:
            request.app[MIRROR].stats.add(uplink, "hits")  # the mirror's copy, fresh
    else:
        current = await resolve(request, name, rule)
        if current is None:
            raise not_here(request, name, rule)
        # Only a package published here is written back; a mirrored one is the uplink's.
        unfiltered = unfiltered and not is_mirrored(current.doc)
        view = UNCHANGED if unfiltered else await packages.view(name, current)
        rendered = await packages.render(name, current, base, variant, view)
        if not unfiltered:
            packages.served(name, current, request.app[MIRROR].fresh_for(name, current), view)
    # Only a package that exists is recorded (for `tarhold gc`; never waits):
    # requests for random names must not grow the database.
    note_access(request, name)
    response = bytes_response(request, rendered, content_type)
    if not unfiltered:
        request.app[FAST_READS].remember_packument(request, response, name, rendered, base, variant)
    return response


async def get_manifest(request: web.Request, name: str, spec: str) -> web.StreamResponse:
    rule = readable_rule(request, name)
    packages = request.app[PACKAGES]
    current = await resolve(request, name, rule)
    if current is None:
        raise not_here(request, name, rule)
    view = await packages.view(name, current)
    packages.policy.check_version(name, spec, view, who=request.get("user"))
    # The one manifest as the full document serves it (tarball URLs on this registry),
    # without rendering, or parsing, the whole document.
    doc = shown_doc(view, current)
    version = version_for(doc, spec)
    if version is None:
        raise NotFoundError(f"version or tag {spec} of {name} not found")
    manifest = rewrite_manifest(doc["versions"][version], name, version, base_url(request).rstrip("/"))
    return web.json_response(manifest, dumps=lambda o: orjson.dumps(o).decode())


async def put_package(request: web.Request, name: str) -> web.StreamResponse:
    """PUT /{name}: a publish when it carries attachments, otherwise a change of the document."""
    body = await read_object(request)
    if "_attachments" in body:
        return await publish_package(request, name, body)
    return await changes.change_packument(request, name, body)


async def dispatch(request: web.Request) -> web.StreamResponse:
    """The catch-all route: `/{name}[/...]` in all of npm's spellings."""
    parsed = parse_package_target(request.rel_url.raw_path, request.app[CONFIG].url_prefix)
    if parsed is None:
        raise NotFoundError("not found")
    name, rest, readable = parsed
    method = request.method
    if not readable:
        raise BadRequest(f"invalid package name {name!r}")
    if method not in {"GET", "HEAD"}:
        # Anything that writes must use a name npm allows for new packages.
        validate_package_name(name)
    if not rest:
        if method in {"GET", "HEAD"}:
            return await get_packument(request, name)
        if method == "PUT":
            return await put_package(request, name)
    elif rest[0] == "-rev" and len(rest) == 2:
        if method == "PUT":
            return await changes.change_packument(request, name, await read_object(request))
        if method == "DELETE":
            return await changes.unpublish_package(request, name)
    elif rest[0] == "-" and len(rest) == 2:
        if method in {"GET", "HEAD"}:
            return await get_tarball(request, name, rest[1])
    elif rest[0] == "-" and len(rest) == 4 and rest[2] == "-rev":
        if method == "DELETE":
            return await changes.unpublish_tarball(request, name, rest[1])
    elif len(rest) == 1 and rest[0] and not rest[0].startswith("-"):
        if method in {"GET", "HEAD"}:
            return await get_manifest(request, name, rest[0])
        if method == "PUT":
            # Legacy `npm dist-tag add`: PUT /{name}/{tag} with "version" as body.
            return await changes.put_dist_tag_legacy(request, name, rest[0])
    else:
        raise NotFoundError("not found")
    raise MethodNotAllowed(f"{method} is not supported on this path")


def setup(app: web.Application) -> None:
    """Register the package routes; the catch-all must come after every `/-/` route."""
    changes.setup(app)
    app.router.add_route("*", "/{tail:.*}", dispatch)
