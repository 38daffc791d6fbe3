"""`npm org` and `npm team`: an organization's members, its teams and their members.

- `GET|PUT|DELETE /-/org/{org}/user`: `npm org ls|set|rm` (libnpmorg);
- `GET|PUT /-/org/{org}/team`: `npm team ls @org` / `npm team create @org:team`;
- `DELETE /-/team/{org}/{team}`: `npm team destroy`;
- `GET|PUT|DELETE /-/team/{org}/{team}/user`: `npm team ls|add|rm @org:team`.
Members read; owners and admins change, and only owners touch owners. Every
change takes the caller's one-time password when their 2FA covers writes,
is logged, and reaches every instance within seconds (org_directory.py).
Packages and grants: routes_org_access.py. `tarhold org create` makes an org.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from registry.domain.errors import BadRequest, Forbidden, NotFoundError
from registry.domain.org_store import (
    add_team_member,
    create_team,
    destroy_team,
    remove_member,
    remove_team_member,
    require_org,
    require_team,
    set_member,
)
from registry.domain.orgs import Org
from registry.domain.users import get_user, valid_user_name
from registry.http.appkeys import DATABASE
from registry.http.auth import Identity, require_grant, require_user
from registry.http.bodies import read_object
from registry.http.org_directory import reload
from registry.http.otp import require_otp

LOG = logging.getLogger(__name__)
MANAGERS = ("owner", "admin")


async def org_for(request: web.Request, *, manage: bool) -> tuple[Identity, Org]:
    """The org of the path and who asks: a member (`manage`: an owner or admin, with their code)."""
    identity = require_user(request)
    org = await require_org(request.app[DATABASE], request.match_info["org"])
    role = org.role(identity.user)
    if role is None:
        raise Forbidden(f"{identity.user} is not a member of the {org.name} organization")
    if manage:
        if role not in MANAGERS:
            raise Forbidden(f"only owners and admins of {org.name} may change it; {identity.user} is a {role}")
        require_grant(identity, "user", identity.user, write=True)  # tokens limited to packages may not
        await require_otp(request, identity, purpose="org")
    return identity, org


def _user_of(body: dict[str, Any]) -> str:
    user = str(body.get("user", "")).lstrip("@~")
    if not valid_user_name(user):
        raise BadRequest("give the user as {\"user\": NAME}")
    return user


def _log(identity: Identity, what: str, org: Org) -> None:
    LOG.warning("%s %s", identity.user, what, extra={"user": identity.user, "org": org.name})


async def list_members(request: web.Request) -> web.Response:
    _, org = await org_for(request, manage=False)
    return web.json_response(dict(sorted(org.members.items())))


async def set_membership(request: web.Request) -> web.Response:
    identity, org = await org_for(request, manage=True)
    body = await read_object(request, allowed={"user", "role"})
    user, role = _user_of(body), str(body.get("role") or "developer")
    if await get_user(request.app[DATABASE], user) is None:
        raise NotFoundError(f"user {user} not found")
    if "owner" in (role, org.members.get(user)) and org.role(identity.user) != "owner":
        raise Forbidden(f"only owners of {org.name} may add, change or remove owners")
    org = await set_member(request.app[DATABASE], org, user, role)
    await reload(request.app)
    _log(identity, f"set {user} as {role} of {org.name}", org)
    return web.json_response({"org": {"name": org.name, "size": len(org.members)}, "user": user, "role": role})


async def remove_membership(request: web.Request) -> web.Response:
    identity, org = await org_for(request, manage=True)
    user = _user_of(await read_object(request, allowed={"user"}))
    if org.members.get(user) == "owner" and org.role(identity.user) != "owner":
        raise Forbidden(f"only owners of {org.name} may remove owners")
    await remove_member(request.app[DATABASE], org, user)
    await reload(request.app)
    _log(identity, f"removed {user} from {org.name}", org)
    return web.Response(status=204)


async def list_teams(request: web.Request) -> web.Response:
    _, org = await org_for(request, manage=False)
    return web.json_response([f"{org.name}:{team}" for team in sorted(org.teams)])


async def add_team(request: web.Request) -> web.Response:
    identity, org = await org_for(request, manage=True)
    body = await read_object(request, allowed={"name", "description"})
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise BadRequest("description must be a string")
    team = await create_team(request.app[DATABASE], org, str(body.get("name", "")), description)
    await reload(request.app)
    _log(identity, f"created team @{org.name}:{team.name}", org)
    return web.json_response({"name": team.name, "description": team.description}, status=201)


async def remove_team(request: web.Request) -> web.Response:
    identity, org = await org_for(request, manage=True)
    await destroy_team(request.app[DATABASE], org, request.match_info["team"])
    await reload(request.app)
    _log(identity, f"destroyed team @{org.name}:{request.match_info['team']}", org)
    return web.Response(status=204)


async def list_team_members(request: web.Request) -> web.Response:
    _, org = await org_for(request, manage=False)
    return web.json_response(sorted(require_team(org, request.match_info["team"]).members))


async def add_to_team(request: web.Request) -> web.Response:
    identity, org = await org_for(request, manage=True)
    user, team = _user_of(await read_object(request, allowed={"user"})), request.match_info["team"]
    await add_team_member(request.app[DATABASE], org, team, user)
    await reload(request.app)
    _log(identity, f"added {user} to @{org.name}:{team}", org)
    return web.json_response({}, status=201)


async def remove_from_team(request: web.Request) -> web.Response:
    identity, org = await org_for(request, manage=True)
    user, team = _user_of(await read_object(request, allowed={"user"})), request.match_info["team"]
    await remove_team_member(request.app[DATABASE], org, team, user)
    await reload(request.app)
    _log(identity, f"removed {user} from @{org.name}:{team}", org)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/-/org/{org}/user", list_members)
    app.router.add_put("/-/org/{org}/user", set_membership)
    app.router.add_delete("/-/org/{org}/user", remove_membership)
    app.router.add_get("/-/org/{org}/team", list_teams)
    app.router.add_put("/-/org/{org}/team", add_team)
    app.router.add_delete("/-/team/{org}/{team}", remove_team)
    app.router.add_get("/-/team/{org}/{team}/user", list_team_members)
    app.router.add_put("/-/team/{org}/{team}/user", add_to_team)
    app.router.add_delete("/-/team/{org}/{team}/user", remove_from_team)
