"""`GET /{name}/-/{file}.tgz`: the access check once, then the domain's answer as a response.

Where the bytes come from (memory, a redirect, a local file, a storage stream
or an uplink download) is decided by registry.domain.tarballs; this module
only turns each kind of answer into the response that serves it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from registry.domain.access import Action
from registry.domain.tarballs import (
    HeldBytes,
    LocalFile,
    MirrorStream,
    Redirect,
    StoredStream,
    TarballAnswer,
    find_tarball,
)
from registry.http.access import authorize
from registry.http.appkeys import MIRROR, PACKAGES
from registry.http.fast_reads import FAST_READS, etag_matches
from registry.http.usage import note_access
from storage.base import TarballReader
from uplinks.base import UplinkError

LOG = logging.getLogger(__name__)

TARBALL_CHUNK = 1024 * 1024
# A tarball's bytes never change under its name (no version is published twice).
TARBALL_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}


async def get_tarball(request: web.Request, name: str, filename: str) -> web.StreamResponse:
    permit = authorize(request, name, Action.READ)
    answer = await find_tarball(
        request.app[PACKAGES], request.app[MIRROR], name, filename,
        permit.rule.proxy, request.headers.get("Via", ""), who=request.get("user"),
    )
    note_access(request, name)  # found (for `tarhold gc`; never waits)
    response = await tarball_response(request, answer, name, filename)
    if isinstance(answer, HeldBytes):
        request.app[FAST_READS].remember_tarball(request, response, name, filename)
    return response


async def tarball_response(
    request: web.Request, answer: TarballAnswer, name: str, filename: str
) -> web.StreamResponse:
    """The response that serves `answer`."""
    if isinstance(answer, HeldBytes):
        return bytes_response(request, answer.body, answer.etag)
    if isinstance(answer, Redirect):
        raise web.HTTPTemporaryRedirect(answer.location, headers={"Cache-Control": "no-cache"})
    if isinstance(answer, LocalFile):
        # sendfile: the kernel copies the file; no bytes pass through Python.
        return web.FileResponse(
            answer.path, chunk_size=TARBALL_CHUNK,
            headers={**TARBALL_HEADERS, "Content-Type": "application/octet-stream"},
        )
    if isinstance(answer, StoredStream):
        return await stored_stream_response(request, answer)
    return await mirror_response(request, answer, name, filename)


def bytes_response(request: web.Request, body: bytes, etag: str) -> web.Response:
    headers = {"ETag": etag, **TARBALL_HEADERS}
    if etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "application/octet-stream"
    return web.Response(body=body, headers=headers)


async def stored_stream_response(request: web.Request, answer: StoredStream) -> web.StreamResponse:
    reader = answer.reader
    async with reader:
        headers = {"ETag": reader.etag, **TARBALL_HEADERS}
        if etag_matches(request.headers.get("If-None-Match"), reader.etag):
            return web.Response(status=304, headers=headers)
        return await stream_reader(request, reader, headers)


async def stream_reader(request: web.Request, reader: TarballReader, headers: dict[str, str]) -> web.StreamResponse:
    """Send an open stored tarball (the caller closes the reader) with `headers`; no body for HEAD."""
    response = web.StreamResponse(headers=headers)
    response.content_type = "application/octet-stream"
    response.content_length = reader.size
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in reader:
            await response.write(chunk)
    await response.write_eof()
    return response


async def mirror_response(
    request: web.Request, answer: MirrorStream, name: str, filename: str
) -> web.StreamResponse:
    """Stream a tarball from its uplink while it is mirrored; cut off on any failure."""
    response = web.StreamResponse(headers=dict(TARBALL_HEADERS))
    response.content_type = "application/octet-stream"
    if answer.size is not None:
        response.content_length = answer.size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        async for chunk in answer.chunks:
            await response.write(chunk)
    except UplinkError as exc:
        # Headers are gone: the only honest signal left is a cut connection,
        # never a complete-looking body with the wrong bytes. A deliberate
        # cut is not a crash: the response is returned, and aiohttp's end of
        # body fails quietly on the aborted transport. The mirror logs the
        # reason once per download (a warning); each client cut off is info.
        LOG.info("cut off %s/%s for the client: %s", name, filename, exc)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
