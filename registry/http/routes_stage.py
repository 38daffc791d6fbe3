"""npm's staged publishing API, as `npm stage publish|list|view|download|approve|reject` calls it.

- `GET /-/stage`: the stages the caller may see, most recent first, paged.
- `POST /-/stage/package/{name}`: the `npm publish` body; whoever may publish
  the package may stage it (rule, token grants, maintainers, the shadowing
  guard), without a one-time password: that is what staging defers.
- `GET /-/stage/{id}`, `GET /-/stage/{id}/tarball`: the record, the bytes.
- `DELETE /-/stage/{id}` (reject, 204), `POST /-/stage/{id}/approve` (201):
  with a one-time password from a user who has 2FA on.

Who sees a stage: its package's maintainers and whoever staged it, when the
package's rule (and their token) lets them read it. Anyone else gets the
404 a missing id gets, so a stage id confirms nothing. Approving also needs
publish permission and maintainership (for a package that does not exist
yet, the stager is the only one who sees it, and approves it); rejecting
needs publish permission.
"""

from __future__ import annotations

import logging

from aiohttp import web

from registry.domain.access import Action, Identity, may_read
from registry.domain.errors import BadRequest, NotFoundError
from registry.domain.packages import is_mirrored
from registry.domain.publish import Doc, check_maintainer, local_doc, maintainer_names
from registry.domain.staging import (
    NOT_FOUND,
    StageRecord,
    all_stages,
    approve,
    get_stage,
    may_review,
    parse_stage_id,
    reject,
    stage,
)
from registry.domain.tarball import Limits
from registry.domain.trust_configs import CREATE_STAGED_PACKAGE
from registry.domain.users import get_user
from registry.http.access import authorize, rule_of
from registry.http.appkeys import CONFIG, DATABASE, PACKAGES
from registry.http.auth import require_user
from registry.http.bodies import query_int, read_object
from registry.http.otp import require_otp
from registry.http.routes_publish import refuse_shadowing
from registry.http.routes_tarballs import stream_reader
from registry.http.urls import base_url, package_after
from storage.base import NotFound

LOG = logging.getLogger(__name__)

PER_PAGE = 10
MAX_PER_PAGE = 100
MAX_PAGE = 100_000
STAGE_PATH = "/-/stage/package/"


async def _maintainers(request: web.Request, name: str) -> list[str]:
    current = await request.app[PACKAGES].read(name, cached=True)
    return [] if current is None or is_mirrored(current.doc) else maintainer_names(current.doc)


async def list_stages(request: web.Request) -> web.Response:
    """`GET /-/stage?package=&page=&perPage=`: `{items, page, perPage, total}`."""
    identity = require_user(request)
    page = query_int(request, "page", 0, 0, MAX_PAGE)
    per_page = query_int(request, "perPage", PER_PAGE, 1, MAX_PER_PAGE)
    package = request.query.get("package") or None
    if package is not None and len(package) > 214:
        raise BadRequest("package must be a package name")
    records = [r for r in await all_stages(request.app[DATABASE]) if package is None or r.name == package]
    readers: dict[str, list[str] | None] = {}  # name -> maintainers; None: the caller may not read it
    visible: list[StageRecord] = []
    for record in records:
        if record.name not in readers:
            readable = may_read(rule_of(request, record.name), identity, record.name)
            readers[record.name] = await _maintainers(request, record.name) if readable else None
        maintainers = readers[record.name]
        if maintainers is not None and may_review(record, identity.user, maintainers):
            visible.append(record)
    shown = visible[page * per_page:(page + 1) * per_page]
    return web.json_response(
        {"items": [r.public() for r in shown], "page": page, "perPage": per_page, "total": len(visible)}
    )


async def visible_stage(request: web.Request) -> tuple[StageRecord, Identity, Doc | None]:
    """The stage the path names, who asks and its package's document; 404 for whoever may not see it."""
    identity = require_user(request)
    record = await get_stage(request.app[DATABASE], parse_stage_id(request.match_info["id"]))
    doc = await local_doc(request.app[PACKAGES], record.name)
    readable = may_read(rule_of(request, record.name), identity, record.name)
    if not readable or not may_review(record, identity.user, maintainer_names(doc)):
        raise NotFoundError(NOT_FOUND)
    return record, identity, doc


async def view_stage(request: web.Request) -> web.Response:
    record, _, _ = await visible_stage(request)
    return web.json_response(record.public())


async def stage_tarball(request: web.Request) -> web.StreamResponse:
    """The staged bytes, streamed (`npm stage download`)."""
    record, _, _ = await visible_stage(request)
    try:
        reader = await request.app[PACKAGES].store.open_tarball(record.name, record.filename)
    except NotFound:
        raise NotFoundError(f"the staged tarball of {record.name}@{record.version} is gone") from None
    async with reader:
        return await stream_reader(request, reader, {"Cache-Control": "no-store", "ETag": reader.etag})


def _package_of(request: web.Request) -> str:
    """The package in `/-/stage/package/{name}` (`@scope%2fname` or `@scope/name`)."""
    return package_after(request, STAGE_PATH, ()).name


async def stage_package(request: web.Request) -> web.Response:
    """Stage the one version the `npm publish` body carries; 201 with its id."""
    name = _package_of(request)
    permit = authorize(request, name, Action.PUBLISH, permission=CREATE_STAGED_PACKAGE)
    await refuse_shadowing(request, name, permit.rule)
    body = await read_object(request)
    profile = await get_user(request.app[DATABASE], permit.user)
    record = await stage(
        request.app[PACKAGES], name, body, user=permit.user, email=(profile or {}).get("email"),
        limits=Limits(max_unpacked=request.app[CONFIG].max_unpacked_size),
    )
    return web.json_response({"message": "Package version staged successfully.", "stageId": record.id}, status=201)


async def reject_stage(request: web.Request) -> web.Response:
    """`npm stage reject`: the stage, its tarball and its hold on the version go; 204."""
    record, identity, _ = await visible_stage(request)
    authorize(request, record.name, Action.PUBLISH)
    await require_otp(request, identity, purpose="review", package=record.name)
    await reject(request.app[PACKAGES], record)
    return web.Response(status=204)


async def approve_stage(request: web.Request) -> web.Response:
    """`npm stage approve`: publish the staged version with its dist-tag; 201."""
    record, identity, doc = await visible_stage(request)
    permit = authorize(request, record.name, Action.PUBLISH)
    await refuse_shadowing(request, record.name, permit.rule)
    check_maintainer(doc, permit.maintainer)
    await require_otp(request, identity, purpose="review", package=record.name)
    base = base_url(request)
    await approve(
        request.app[PACKAGES], record, approver=identity.user,
        tarball_url=lambda n, f: f"{base}/{n}/-/{f}",
    )
    request["published"] = True  # counted by the metrics middleware
    return web.json_response({"message": "Package version approved and published successfully."}, status=201)


def setup(app: web.Application) -> None:
    """The `/-/stage` routes; before the package routes' catch-all."""
    router = app.router
    router.add_get("/-/stage", list_stages)
    router.add_post(STAGE_PATH + "{tail:.*}", stage_package)
    router.add_get("/-/stage/{id}", view_stage)
    router.add_delete("/-/stage/{id}", reject_stage)
    router.add_get("/-/stage/{id}/tarball", stage_tarball)
    router.add_post("/-/stage/{id}/approve", approve_stage)

