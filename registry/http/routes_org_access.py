"""`npm access`: which packages a user, org or team has, who collaborates on a package, its
visibility, and team grants.

- `GET /-/org/{org}/package`, `GET /-/team/{org}/{team}/package`,
  `GET /-/user/{user}/package`: `npm access list packages [user|scope|scope:team]`
  (`{package: "read"|"write"}`, only packages the caller may read);
- `PUT|DELETE /-/team/{org}/{team}/package`: `npm access grant|revoke`
  (`{package, permissions: "read-only"|"read-write"}`), owners and admins;
- `GET /-/package/{name}/collaborators`: `npm access list collaborators`;
- `GET /-/package/{name}/visibility`: `npm access get status` (`{public}`);
- `set_visibility`: `npm access set status=public|private`, the `access`
  field of `POST /-/package/{name}/access` (routes_access.py), for packages
  of an org's scope; elsewhere the `packages:` rules decide who reads.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from registry.domain.access import Action, is_allowed
from registry.domain.errors import BadRequest, Forbidden, NotFoundError
from registry.domain.org_store import grant, require_team, revoke, set_visibility
from registry.domain.orgs import READ, WRITE, scope_of
from registry.domain.publish import local_doc, maintainer_names
from registry.domain.users import valid_user_name
from registry.http.access import Permit, authorize, may_see, require_visible
from registry.http.appkeys import DATABASE, PACKAGES
from registry.http.auth import require_user
from registry.http.bodies import read_object
from registry.http.org_directory import orgs_of, reload
from registry.http.otp import require_otp
from registry.http.routes_orgs import MANAGERS, org_for
from registry.http.urls import package_after

LOG = logging.getLogger(__name__)
LEVELS = {"read-only": READ, "read-write": WRITE}


def _visible(request: web.Request, packages: dict[str, str]) -> dict[str, str]:
    return {name: level for name, level in sorted(packages.items()) if may_see(request, name) is not None}


async def org_packages(request: web.Request) -> web.Response:
    identity, org = await org_for(request, manage=False)
    mine = {p: org.permission(identity.user, p) or READ for p in org.packages()}
    return web.json_response(_visible(request, mine))


async def team_packages(request: web.Request) -> web.Response:
    _, org = await org_for(request, manage=False)
    return web.json_response(_visible(request, dict(require_team(org, request.match_info["team"]).grants)))


async def user_packages(request: web.Request) -> web.Response:
    """What `user` maintains here and what their orgs give them, that the caller may see."""
    require_user(request)
    user = request.match_info["user"]
    if not valid_user_name(user):
        raise NotFoundError(f"user {user} not found")
    found: dict[str, str] = {}
    async for name, entry in request.app[DATABASE].query("PACKAGE"):
        maintainers = entry.get("maintainers") if isinstance(entry.get("maintainers"), list) else []
        if entry.get("local") and any(isinstance(m, dict) and m.get("name") == user for m in maintainers):
            found[name] = WRITE
    for name, level in orgs_of(request).user_packages(user).items():
        if found.get(name) != WRITE:
            found[name] = level
    return web.json_response(_visible(request, found))


async def _local(request: web.Request, name: str) -> dict[str, Any]:
    doc = await local_doc(request.app[PACKAGES], name)
    if doc is None or not doc.get("versions"):
        raise NotFoundError(f"package {name} not found")
    return doc


def _readable(request: web.Request, name: str) -> Permit:
    """`authorize` to read; a package the caller may not see gets `_local`'s 404 of a missing
    one, word for word, so these answers never tell that a private package exists."""
    try:
        return authorize(request, name, Action.READ)
    except NotFoundError:
        raise NotFoundError(f"package {name} not found") from None


async def change_grant(request: web.Request) -> web.Response:
    identity, org = await org_for(request, manage=True)
    team = require_team(org, request.match_info["team"]).name
    body = await read_object(request, allowed={"package", "permissions"})
    name = str(body.get("package", ""))
    if scope_of(name) != org.name:
        raise BadRequest(f"{name!r} is not a package of @{org.name}: teams of {org.name} hold grants on @{org.name}/* only")
    await _local(request, name)
    if request.method == "PUT":
        level = LEVELS.get(str(body.get("permissions")))
        if level is None:
            raise BadRequest("permissions must be read-only or read-write")
        await grant(request.app[DATABASE], org, team, name, level)
        what = f"granted {level} on {name} to @{org.name}:{team}"
    else:
        await revoke(request.app[DATABASE], org, team, name)
        what = f"revoked @{org.name}:{team} on {name}"
    await reload(request.app)
    LOG.warning("%s %s", identity.user, what, extra={"user": identity.user, "package": name})
    return web.json_response({}, status=201 if request.method == "PUT" else 200)


async def collaborators(request: web.Request) -> web.Response:
    name = package_after(request, "/-/package/", ("collaborators",)).name
    _readable(request, name)
    doc = await _local(request, name)
    org = orgs_of(request).org_for(name)
    if org is not None:
        return web.json_response(org.collaborators(name))
    return web.json_response({user: WRITE for user in maintainer_names(doc)})


async def visibility(request: web.Request) -> web.Response:
    name = package_after(request, "/-/package/", ("visibility",)).name
    permit = _readable(request, name)
    await _local(request, name)
    org = orgs_of(request).org_for(name)
    public = is_allowed(None, permit.rule.access) and (org is None or org.is_public(name))
    return web.json_response({"public": public})


async def set_org_visibility(request: web.Request, name: str, access: Any) -> web.Response:
    """`npm access set status=public|private` on a package of an org's scope."""
    if access not in ("public", "restricted", "private"):
        raise BadRequest("access must be public or restricted")
    org = orgs_of(request).org_for(name)
    if org is None:
        raise BadRequest(
            "who may read a package outside an organization's scope is set by the registry's packages: rules;"
            " ask the registry's operator"
        )
    identity = require_user(request)
    require_visible(request, name)
    await _local(request, name)
    if org.role(identity.user) not in MANAGERS and org.permission(identity.user, name) != WRITE:
        raise Forbidden(f"{identity.user} may not change who reads {name}: ask an owner or admin of {org.name}")
    await require_otp(request, identity, purpose="org")
    await set_visibility(request.app[DATABASE], org, name, access == "public")
    await reload(request.app)
    LOG.warning("%s made %s %s", identity.user, name, access, extra={"user": identity.user, "package": name})
    return web.json_response({"ok": True, "public": access == "public"})


def setup(app: web.Application) -> None:
    """Before the `/-/package/` catch-all of routes_changes."""
    app.router.add_get("/-/org/{org}/package", org_packages)
    app.router.add_get("/-/team/{org}/{team}/package", team_packages)
    app.router.add_put("/-/team/{org}/{team}/package", change_grant)
    app.router.add_delete("/-/team/{org}/{team}/package", change_grant)
    app.router.add_get("/-/user/{user}/package", user_packages)
    app.router.add_get("/-/package/{tail:.*}/collaborators", collaborators)
    app.router.add_get("/-/package/{tail:.*}/visibility", visibility)
