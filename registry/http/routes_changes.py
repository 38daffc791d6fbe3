"""Changes to a published package: deprecate, owners, unpublish, dist-tags.

Each is one call to `Packages.update_packument` with a pure function from
`packument_changes.py`; permissions are the one access decision
(registry.http.access) and the package's maintainers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from registry.domain.access import Action
from registry.domain.clock import now_iso
from registry.domain.errors import BadRequest, Forbidden, NotFoundError
from registry.domain.mirror_policy import shown_doc
from registry.domain.names import parse_tarball_filename
from registry.domain.packages import Packages, is_mirrored
from registry.domain.packument import UpdateResult
from registry.domain.packument_changes import (
    apply_update,
    remove_dist_tag,
    set_dist_tag,
    unpublish_all,
)
from registry.domain.provenance import forget_attestations
from registry.domain.publish import check_maintainer
from registry.domain.trust_configs import MANAGE_DIST_TAGS
from registry.http import routes_access
from registry.http.access import authorize, require_visible
from registry.http.appkeys import PACKAGES
from registry.http.bodies import read_json
from registry.http.otp import authorize_write
from registry.http.urls import package_after
from storage.base import NotFound, StorageError

LOG = logging.getLogger(__name__)


def packages_of(request: web.Request) -> Packages:
    return request.app[PACKAGES]


def local_change(
    name: str, user: str | None, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
    """Wrap a pure change for update_packument: only published packages, only by
    their maintainers (`user=None` skips that check), refusals as HTTP errors."""

    def apply(doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None or not doc.get("versions"):
            raise NotFoundError(f"package {name} not found")
        if is_mirrored(doc):
            raise Forbidden(f"{name} is mirrored from an uplink; it can only be changed there")
        if user is not None:
            check_maintainer(doc, user)
        return change(doc)

    return apply


async def _live_or_404(packages: Packages, name: str) -> None:
    if await packages.read_live(name) is None:
        raise NotFoundError(f"package {name} not found")


async def change_packument(request: web.Request, name: str, body: dict[str, Any]) -> web.Response:
    """PUT /{name}/-rev/{rev}: the whole document back, with versions removed,
    deprecations, maintainers or stars changed (npm unpublish/deprecate/owner/star)."""
    if body.get("versions") is not None and not isinstance(body["versions"], dict):
        raise BadRequest("versions must be an object of version: manifest")
    packages = packages_of(request)
    require_visible(request, name)
    current = await packages.read_live(name)
    if current is None:
        raise NotFoundError(f"package {name} not found")
    if set(body) <= STAR_KEYS and "users" in body:
        return await star(request, name, body)
    removing = (
        set(current.doc.get("versions", {})) - set(body["versions"])
        if isinstance(body.get("versions"), dict) else set()
    )
    permit = await authorize_write(request, name, Action.UNPUBLISH if removing else Action.PUBLISH)
    stamp = now_iso()
    # update_packument may apply the change more than once (on a conflict):
    # the last application is the one written.
    results: list[UpdateResult] = []

    def update(doc: dict[str, Any]) -> dict[str, Any]:
        results.append(apply_update(doc, body, now=stamp))
        return results[-1].packument

    new, _ = await packages.update_packument(name, local_change(name, permit.maintainer, update))
    await _after_change(packages, name, new, results[-1].removed_tarballs, results[-1].removed_versions)
    return web.json_response({"ok": "package changed", "success": True}, status=201)


STAR_KEYS = frozenset({"_id", "_rev", "users", "name"})


async def star(request: web.Request, name: str, body: dict[str, Any]) -> web.Response:
    """npm star/unstar: any reader may add or remove their own entry, nobody else's."""
    user = authorize(request, name, Action.STAR).user
    users = body.get("users")
    if not isinstance(users, dict):
        raise BadRequest("users must be an object")
    starred = bool(users.get(user))
    packages = packages_of(request)

    def toggle(doc: dict[str, Any]) -> dict[str, Any]:
        stars = dict(doc.get("users") or {})
        if starred:
            stars[user] = True
        else:
            stars.pop(user, None)
        return {**doc, "users": stars}

    await packages.update_packument(name, local_change(name, None, toggle))
    return web.json_response({"ok": "stars updated", "success": True}, status=201)


async def _after_change(
    packages: Packages, name: str, new: dict[str, Any], removed_tarballs: Iterable[str],
    removed_versions: Iterable[str],
) -> None:
    # Tarballs of versions the change removed go too (npm also sends a DELETE
    # for them; whichever comes second finds nothing to do), and so do their
    # provenance bundles.
    for filename in sorted(removed_tarballs):
        try:
            await packages.store.delete_tarball(name, filename)
        except NotFound:
            pass
    await _forget_attestations(packages, name, removed_versions)
    await packages.record_package(new)


async def _forget_attestations(packages: Packages, name: str, versions: Iterable[str] | None) -> None:
    """Delete the provenance bundles of unpublished versions (None: all). The unpublish stands
    when this fails: a bundle of a version the packument does not list is never served."""
    try:
        await forget_attestations(packages.db, name, versions)
    except StorageError:
        LOG.exception("could not delete the provenance bundles of unpublished versions of %s", name)


async def unpublish_package(request: web.Request, name: str) -> web.Response:
    """DELETE /{name}/-rev/{rev}: the whole package goes; its history stays as a
    tombstone so no version of it can be published again."""
    packages = packages_of(request)
    require_visible(request, name)
    permit = await authorize_write(request, name, Action.UNPUBLISH)
    user = permit.user
    stamp = now_iso()

    tombstone = local_change(name, permit.maintainer, lambda doc: unpublish_all(doc, now=stamp, user=user).packument)
    new, old = await packages.update_packument(name, tombstone)
    for filename in await packages.store.list_files(name):
        if parse_tarball_filename(name, filename) is not None:
            try:
                await packages.store.delete_tarball(name, filename)
            except NotFound:
                pass
    await _forget_attestations(packages, name, None)
    await packages.record_package(new)
    LOG.info("unpublished %s by %s", name, user)
    return web.json_response({"ok": "package removed", "success": True})


async def unpublish_tarball(request: web.Request, name: str, filename: str) -> web.Response:
    """DELETE /{name}/-/{file}/-rev/{rev}: npm sends it after removing the version."""
    packages = packages_of(request)
    require_visible(request, name)
    await authorize_write(request, name, Action.UNPUBLISH)
    version = parse_tarball_filename(name, filename)
    if version is None:
        raise BadRequest(f"{filename} is not a tarball of {name}")
    current = await packages.read(name)
    if current is not None and is_mirrored(current.doc):
        raise Forbidden(f"{name} is mirrored from an uplink; it can only be changed there")
    if current is not None and version in current.doc.get("versions", {}):
        raise BadRequest(f"{name}@{version} is still published; unpublish the version first")
    try:
        await packages.store.delete_tarball(name, filename)
    except NotFound:
        raise NotFoundError(f"tarball {filename} of {name} not found") from None
    return web.json_response({"ok": "tarball removed", "success": True})


# -- dist-tags ----------------------------------------------------------------


def _dist_tag_target(request: web.Request) -> tuple[str, str | None]:
    """Parse `/-/package/{name}/dist-tags[/{tag}]` from the encoded path."""
    parsed = package_after(request, "/-/package/")
    if not parsed.rest or parsed.rest[0] != "dist-tags" or len(parsed.rest) > 2:
        raise NotFoundError("not found")
    tag = parsed.rest[1] if len(parsed.rest) == 2 else None
    return parsed.name, tag


async def _tag_version(request: web.Request) -> str:
    value = await read_json(request, invalid="body must be a JSON string naming a version")
    if not isinstance(value, str) or not value:
        raise BadRequest("body must be a JSON string naming a version")
    return value


async def _set_tags(request: web.Request, name: str, tags: dict[str, str]) -> web.Response:
    packages = packages_of(request)
    require_visible(request, name)
    await _live_or_404(packages, name)
    maintainer = (await authorize_write(request, name, Action.PUBLISH, permission=MANAGE_DIST_TAGS)).maintainer

    def tag_all(doc: dict[str, Any]) -> dict[str, Any]:
        for tag, version in tags.items():
            doc = set_dist_tag(doc, tag, version)
        return doc

    new, _ = await packages.update_packument(name, local_change(name, maintainer, tag_all))
    await packages.record_package(new)
    return web.json_response({"ok": "dist-tags updated", **new.get("dist-tags", {})}, status=201)


async def dist_tags(request: web.Request) -> web.StreamResponse:
    name, tag = _dist_tag_target(request)
    packages = packages_of(request)
    if request.method == "GET" and tag is None:
        authorize(request, name, Action.READ)
        current = await packages.read_live(name)
        if current is None:
            raise NotFoundError(f"package {name} not found")
        # The tags the mirror policy shows: never one pointing at a hidden version.
        shown = shown_doc(await packages.view(name, current), current)
        return web.json_response(shown.get("dist-tags", {}))
    if request.method == "PUT" and tag is not None:
        return await _set_tags(request, name, {tag: await _tag_version(request)})
    if request.method == "POST" and tag is None:
        body = await read_json(request, invalid="body must be a JSON object of tag: version")
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            raise BadRequest("body must be a JSON object of tag: version")
        return await _set_tags(request, name, body)
    if request.method == "DELETE" and tag is not None:
        require_visible(request, name)
        await _live_or_404(packages, name)
        maintainer = (await authorize_write(request, name, Action.PUBLISH, permission=MANAGE_DIST_TAGS)).maintainer

        untag = local_change(name, maintainer, lambda doc: remove_dist_tag(doc, tag))
        new, _ = await packages.update_packument(name, untag)
        await packages.record_package(new)
        return web.json_response({"ok": "dist-tag removed", **new.get("dist-tags", {})})
    raise NotFoundError("not found")


async def put_dist_tag_legacy(request: web.Request, name: str, tag: str) -> web.Response:
    """PUT /{name}/{tag} with "version" as the body (older npm clients)."""
    return await _set_tags(request, name, {tag: await _tag_version(request)})


def setup(app: web.Application) -> None:
    routes_access.setup(app)  # /-/package/{name}/access: before the catch-all below
    app.router.add_route("*", "/-/package/{tail:.*}", dist_tags)
