"""HTTP handlers for packages: packuments, tarballs, publish and its siblings.

npm's URL space (`/{name}`, `/@scope%2fname`, `/@scope/name`, `/-rev/...`,
`/-/{file}.tgz`) does not fit a route table, so one catch-all route parses the
still-encoded path and dispatches on method and shape.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

from registry.domain.errors import (
    BadGateway,
    BadRequest,
    ClientGone,
    Forbidden,
    MethodNotAllowed,
    NotFoundError,
    PayloadTooLarge,
    RegistryError,
)
from registry.domain.names import is_safe_filename, validate_package_name
from registry.domain.packages import (
    ABBREVIATED,
    FULL,
    MIRROR_MARK,
    Current,
    Packages,
    Rendered,
    is_mirrored,
)
from registry.domain.packument_views import manifest_for
from registry.domain.publish import publish
from registry.domain.rules import PackageRule, rule_for
from registry.domain.users import get_user
from registry.http import routes_changes as changes
from registry.http.appkeys import CONFIG, DATABASE, MIRROR, PACKAGES
from registry.http.auth import (
    Identity,
    is_allowed,
    require_grant,
    require_user,
    require_write,
)
from registry.http.urls import base_url, is_readable_name, split_package_path
from registry.http.usage import note_access
from storage.base import NotFound
from uplinks.base import PackageNotFound, UplinkError
from uplinks.mirror import AlreadyStored

LOG = logging.getLogger(__name__)

# Pure, repeated per request on the hot paths: remembered (the cache keys are
# request paths and header values, bounded by the LRU size).
PATHS_REMEMBERED = 8192
BASES_REMEMBERED = 256

TARBALL_CHUNK = 1024 * 1024
# A tarball's bytes never change under its name (no version is published twice).
TARBALL_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}


def identity_of(request: web.Request) -> Identity | None:
    return request.get("identity")


def rule_of(request: web.Request, name: str) -> PackageRule:
    rule = rule_for(request.app[CONFIG].packages, name)
    if rule is None:
        # No rule matches: nothing is allowed, as in Verdaccio.
        raise NotFoundError(f"no such package available: {name}")
    return rule


def check_access(request: web.Request, name: str) -> PackageRule:
    rule = rule_of(request, name)
    identity = identity_of(request)
    if not is_allowed(identity, rule.access):
        if identity is None:
            raise_unauthorized(name)
        raise Forbidden(f"{identity.user} may not access package {name}")
    require_grant(identity, "pkg", name, write=False, anonymous_ok=is_allowed(None, rule.access))
    return rule


def raise_unauthorized(name: str) -> None:
    from registry.domain.errors import Unauthorized

    raise Unauthorized(f"authentication required to access package {name}")


def check_publish(request: web.Request, name: str, *, unpublish: bool = False) -> Identity:
    identity = require_user(request)
    require_write(identity)
    require_grant(identity, "pkg", name, write=True)
    rule = rule_of(request, name)
    principals = rule.unpublish if unpublish else rule.publish
    if not is_allowed(identity, principals):
        action = "unpublish" if unpublish else "publish"
        raise Forbidden(f"{identity.user} may not {action} package {name}")
    return identity


async def read_json(request: web.Request) -> Any:
    limit = request.app[CONFIG].max_body_size
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes (max_body_size)")
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"request body is larger than the limit of {limit} bytes (max_body_size)"
        ) from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadRequest("request body is not valid JSON") from None


def wants_abbreviated(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return ABBREVIATED in accept and "application/json" not in accept.split(ABBREVIATED)[0]


def bytes_response(request: web.Request, rendered: Rendered, content_type: str) -> web.Response:
    """The pre-built bytes (gzip when accepted), or a 304: no JSON work here."""
    headers = {"ETag": rendered.etag, "Vary": "Accept, Accept-Encoding", "Cache-Control": "no-cache"}
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and rendered.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return web.Response(status=304, headers=headers)
    # Content-Type as a plain header: cheaper than aiohttp's content_type setter.
    headers["Content-Type"] = content_type
    if rendered.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=rendered.gzipped, headers=headers)
    return web.Response(body=rendered.body, headers=headers)


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


async def resolve(request: web.Request, name: str, rule: PackageRule) -> Current | None:
    """The local document, or the uplinks' (fresh, refreshed or stale) per the rule's proxy."""
    return await request.app[MIRROR].packument(name, rule.proxy, request.headers.get("Via", ""))


async def get_packument(request: web.Request, name: str) -> web.StreamResponse:
    rule = check_access(request, name)
    note_access(request, name)  # for `tarhold gc`; never waits
    packages = request.app[PACKAGES]
    variant = ABBREVIATED if wants_abbreviated(request) and "write" not in request.query else FULL
    content_type = ABBREVIATED if variant == ABBREVIATED else "application/json"
    base = cached_base_url(request)
    hot = packages.hot(name, base, variant)
    if hot is not None:
        rendered, uplink = hot
        if uplink is not None:
            request.app[MIRROR].stats.add(uplink, "hits")  # the mirror's copy, fresh
    else:
        current = await resolve(request, name, rule)
        if current is None:
            raise NotFoundError(f"package {name} not found")
        rendered = await packages.render(name, current, base, variant)
        packages.served(name, current, request.app[MIRROR].fresh_for(name, current))
    return bytes_response(request, rendered, content_type)


async def get_manifest(request: web.Request, name: str, spec: str) -> web.StreamResponse:
    rule = check_access(request, name)
    packages = request.app[PACKAGES]
    current = await resolve(request, name, rule)
    if current is None:
        raise NotFoundError(f"package {name} not found")
    rendered = await packages.render(name, current, base_url(request), FULL)
    manifest = manifest_for(orjson.loads(rendered.body), spec)
    if manifest is None:
        raise NotFoundError(f"version or tag {spec} of {name} not found")
    return web.json_response(manifest, dumps=lambda o: orjson.dumps(o).decode())


async def get_tarball(request: web.Request, name: str, filename: str) -> web.StreamResponse:
    rule = check_access(request, name)
    note_access(request, name)  # for `tarhold gc`; never waits
    if not is_safe_filename(filename):
        raise BadRequest(f"invalid tarball file name {filename!r}")
    response = await stored_tarball(request, request.app[PACKAGES], name, filename)
    if response is not None:
        return response
    if rule.proxy:
        return await mirror_tarball(request, name, filename, rule)
    raise NotFoundError(f"tarball {filename} of {name} not found")


async def stored_tarball(
    request: web.Request, packages: Packages, name: str, filename: str
) -> web.StreamResponse | None:
    """The stored tarball, from memory, a redirect, sendfile or a stream; None if not stored."""
    store, held_tarballs = packages.store, packages.tarballs
    held = held_tarballs.get(name, filename)
    if held is not None and not held_tarballs.is_fresh(held):
        # Older than the TTL: another worker may have unpublished it since.
        try:
            info = await store.stat_tarball(name, filename)
        except NotFound:
            info = None
        if info is None or info.etag != held.etag:
            held_tarballs.forget(name, filename)
            held = None
        else:
            held_tarballs.confirm(held)
    if held is not None:
        return tarball_bytes_response(request, held.body, held.etag)
    if store.redirects_tarballs:
        location = await redirect_location(packages, name, filename)
        if location is None:
            return None
        raise web.HTTPTemporaryRedirect(location, headers={"Cache-Control": "no-cache"})
    try:
        reader = await store.open_tarball(name, filename)
    except NotFound:
        return None
    async with reader:
        if held_tarballs.fits(reader.size):
            body = b"".join([chunk async for chunk in reader])
            held_tarballs.put(name, filename, body, reader.etag)
            return tarball_bytes_response(request, body, reader.etag)
        path = store.local_path(name, filename)
        if path is not None:
            # sendfile: the kernel copies the file; no bytes pass through Python.
            return web.FileResponse(
                path, chunk_size=TARBALL_CHUNK,
                headers={**TARBALL_HEADERS, "Content-Type": "application/octet-stream"},
            )
        headers = {"ETag": reader.etag, **TARBALL_HEADERS}
        if reader.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.content_type = "application/octet-stream"
        response.content_length = reader.size
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in reader:
                await response.write(chunk)
        await response.write_eof()
        return response


async def redirect_location(packages: Packages, name: str, filename: str) -> str | None:
    """Where a stored tarball may be fetched directly; None when it is not stored.

    The existence check (a HEAD) is remembered for the TTL like any cached read.
    """
    key = (name, filename)
    location = packages.locations.get(key)
    if location is None:
        try:
            await packages.store.stat_tarball(name, filename)
        except NotFound:
            return None
        location = await packages.store.tarball_location(name, filename)
        if location is None:
            return None
        packages.locations[key] = location
    return location


def tarball_bytes_response(request: web.Request, body: bytes, etag: str) -> web.Response:
    headers = {"ETag": etag, **TARBALL_HEADERS}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "application/octet-stream"
    return web.Response(body=body, headers=headers)


async def mirror_tarball(
    request: web.Request, name: str, filename: str, rule: PackageRule
) -> web.StreamResponse:
    """Stream a tarball from its uplink while it is mirrored; cut off on any failure."""
    try:
        download = await request.app[MIRROR].tarball(
            name, filename, rule.proxy, request.headers.get("Via", "")
        )
    except AlreadyStored:
        return await get_tarball(request, name, filename)
    if download is None:
        raise NotFoundError(f"tarball {filename} of {name} not found")
    chunks = download.follow()
    try:
        await download.started.wait()
        if download.error is not None and download.written == 0:
            raise download.error
    except UplinkError as exc:
        await chunks.aclose()
        if isinstance(exc, PackageNotFound):
            raise NotFoundError(f"tarball {filename} of {name} not found upstream") from None
        raise BadGateway(f"could not fetch {filename} of {name}: {exc}") from None
    response = web.StreamResponse(headers=dict(TARBALL_HEADERS))
    response.content_type = "application/octet-stream"
    if download.size is not None:
        response.content_length = download.size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except UplinkError as exc:
        # Headers are gone: the only honest signal left is a cut connection,
        # never a complete-looking body with the wrong bytes.
        LOG.warning("cut off %s/%s for the client: %s", name, filename, exc)
        if request.transport is not None:
            request.transport.abort()
        raise ClientGone() from None
    await response.write_eof()
    return response


async def put_package(request: web.Request, name: str) -> web.StreamResponse:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if "_attachments" in body:
        # npm publish: PUT /{name} with the version and its tarball.
        identity = check_publish(request, name)
        await refuse_shadowing(request, name)
        request_base = base_url(request)
        profile = await get_user(request.app[DATABASE], identity.user)
        await publish(
            request.app[PACKAGES], name, body, user=identity.user,
            tarball_url=lambda n, f: f"{request_base}/{n}/-/{f}",
            email=(profile or {}).get("email"),
        )
        request["published"] = True  # counted by the metrics middleware
        return web.json_response({"ok": "created new package", "success": True}, status=201)
    return await changes.change_packument(request, name, body)


async def refuse_shadowing(request: web.Request, name: str) -> None:
    """A name an uplink serves may not be published here unless the rule allows it."""
    rule = rule_of(request, name)
    if not rule.proxy or rule.publish_over_uplink:
        return
    try:
        current = await resolve(request, name, rule)
    except RegistryError as exc:
        LOG.warning("could not ask the uplinks about %s before publishing: %s", name, exc.message)
        return
    if current is not None and is_mirrored(current.doc):
        uplink = current.doc[MIRROR_MARK]["uplink"]
        raise Forbidden(
            f"{name} is served by uplink {uplink}; publishing it here would shadow it"
            " (set publish_over_uplink: true on its packages rule to allow this)"
        )


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
            body = await read_json(request)
            if not isinstance(body, dict):
                raise BadRequest("request body must be a JSON object")
            return await changes.change_packument(request, name, body)
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
