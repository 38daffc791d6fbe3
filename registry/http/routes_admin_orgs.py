"""The admin API's view of organizations: `GET /-/tarhold/orgs` and `GET /-/tarhold/orgs/{org}`.

Admins only, as the rest of the admin API (routes_admin.require_admin: 401
anonymous, 403 for anyone else, `user:read=*` for a token with grants).
Each org as stored: when and by whom it was created, its members and their
roles, its teams with their members and grants, and every package it
records with its visibility and the teams granted on it.

Read from the database on each call, not from this instance's snapshot
(org_directory.orgs_of, which another instance's change reaches only
within ORG_POLL seconds): an admin checking a change they just made, or
one made through another instance, sees what is stored. Orgs are small and
these calls rare, so the few queries cost nothing that matters. Changes go
through npm's own commands (`npm org`, `npm team`, `npm access`) and
`tarhold org create`; this API only reads.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from registry.domain.errors import NotFoundError
from registry.domain.org_store import ORGS_PK, load_org, valid_org
from registry.domain.orgs import Org
from registry.http.appkeys import DATABASE
from registry.http.routes_admin import PREFIX, json_response, require_admin
from storage.base import NotFound, RegistryDatabase


def org_view(org: Org, created: dict[str, Any]) -> dict[str, Any]:
    """One org for the admin API (`created`: the org's `ORGS` item: created, created_by)."""
    packages = {name: {"name": name, "public": org.is_public(name), "teams": {}} for name in org.packages()}
    for team in org.teams.values():
        for name, level in team.grants.items():
            packages[name]["teams"][team.name] = level
    return {
        "name": org.name,
        "created": created.get("created"),
        "created_by": created.get("created_by"),
        "members": dict(sorted(org.members.items())),
        "teams": [
            {"name": team.name, "description": team.description, "members": sorted(team.members),
             "grants": dict(sorted(team.grants.items()))}
            for team in sorted(org.teams.values(), key=lambda t: t.name)
        ],
        "packages": [packages[name] for name in sorted(packages)],
    }


async def stored_org(db: RegistryDatabase, name: str, created: dict[str, Any]) -> dict[str, Any] | None:
    org = await load_org(db, name)
    return None if org is None else org_view(org, created)


async def get_orgs(request: web.Request) -> web.Response:
    await require_admin(request)
    db = request.app[DATABASE]
    orgs = []
    async for name, item in db.query(ORGS_PK):
        view = await stored_org(db, name, item)
        if view is not None:
            orgs.append(view)
    orgs.sort(key=lambda o: o["name"])
    return json_response({"orgs": orgs, "total": len(orgs)})


async def get_one_org(request: web.Request) -> web.Response:
    await require_admin(request)
    db = request.app[DATABASE]
    name = valid_org(request.match_info["org"])
    try:
        item = await db.get(ORGS_PK, name)
    except NotFound:
        raise NotFoundError(f"organization {name} not found") from None
    view = await stored_org(db, name, item)
    if view is None:  # removed between the two reads
        raise NotFoundError(f"organization {name} not found")
    return json_response(view)


def setup(app: web.Application) -> None:
    """Register the routes (before the package catch-all)."""
    app.router.add_get(f"{PREFIX}/orgs", get_orgs)
    app.router.add_get(f"{PREFIX}/orgs/{{org}}", get_one_org)
