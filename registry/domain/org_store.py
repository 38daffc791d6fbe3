"""Organizations in the registry database, and the snapshot every instance decides with.

Items (one partition per org, so loading an org is one query):

| pk | sk | item |
|---|---|---|
| `ORGS` | `{org}` | the org exists: created, created_by |
| `ORG#{org}` | `MEMBER#{user}` | a member and their role |
| `ORG#{org}` | `TEAM#{team}` | a team and its description |
| `ORG#{org}` | `TEAMMEMBER#{team}#{user}` | a member of a team |
| `ORG#{org}` | `GRANT#{team}#{package}` | a team's `read` or `write` on a package |
| `ORG#{org}` | `VIS#{package}` | a package's visibility (`public`: true/false) |
| `CONFIG` | `ORGSTAMP` | changes on every write: instances reload when it does |

Every change writes its items, then a new stamp; `load_directory` reads
everything (orgs are small: members, teams, grants). registry.http.org_directory
polls the stamp every ORG_POLL seconds, so a membership or grant change is
enforced everywhere within that, as a revoked token is.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from registry.domain.clock import now_iso
from registry.domain.errors import BadRequest, ConflictError, NotFoundError
from registry.domain.orgs import (
    DEVELOPERS,
    ORG_NAME,
    ROLES,
    TEAM_NAME,
    Org,
    OrgDirectory,
    Team,
)
from storage.base import Conflict, NotFound, RegistryDatabase

ORGS_PK = "ORGS"
STAMP_PK, STAMP_SK = "CONFIG", "ORGSTAMP"
ORG_POLL = 2.0
MAX_MEMBERS = 10_000
MAX_TEAMS = 1_000
MAX_DESCRIPTION = 1_000


def org_pk(org: str) -> str:
    return f"ORG#{org}"


def valid_org(org: str) -> str:
    if not ORG_NAME.match(org):
        raise BadRequest(f"invalid organization name {org!r}: lowercase letters, digits, . _ -")
    return org


def valid_team(team: str) -> str:
    if not TEAM_NAME.match(team):
        raise BadRequest(f"invalid team name {team!r}: lowercase letters, digits, . _ - (at most 64)")
    return team


async def stamp(db: RegistryDatabase) -> str | None:
    try:
        return str((await db.get(STAMP_PK, STAMP_SK))["stamp"])
    except NotFound:
        return None


async def _changed(db: RegistryDatabase) -> None:
    await db.put(STAMP_PK, STAMP_SK, {"stamp": uuid.uuid4().hex, "at": now_iso()})


async def load_org(db: RegistryDatabase, name: str) -> Org | None:
    """One org as stored; None when there is none."""
    try:
        await db.get(ORGS_PK, name)
    except NotFound:
        return None
    members: dict[str, str] = {}
    teams: dict[str, dict[str, Any]] = {}
    visibility: dict[str, bool] = {}
    async for sk, item in db.query(org_pk(name)):
        kind, _, rest = sk.partition("#")
        if kind == "MEMBER":
            members[rest] = str(item.get("role", "developer"))
        elif kind == "TEAM":
            teams.setdefault(rest, {"members": set(), "grants": {}})["description"] = str(item.get("description", ""))
        elif kind == "TEAMMEMBER":
            team, _, user = rest.partition("#")
            teams.setdefault(team, {"members": set(), "grants": {}})["members"].add(user)
        elif kind == "GRANT":
            team, _, package = rest.partition("#")
            teams.setdefault(team, {"members": set(), "grants": {}})["grants"][package] = str(item.get("permissions", "read"))
        elif kind == "VIS":
            visibility[rest] = bool(item.get("public"))
    return Org(
        name=name, members=members, visibility=visibility,
        teams={
            team: Team(team, t.get("description", ""), frozenset(t["members"]), dict(t["grants"]))
            for team, t in teams.items() if "description" in t  # a destroyed team's leftovers are not a team
        },
    )


async def load_directory(db: RegistryDatabase, creators: tuple[str, ...] = ROLES) -> OrgDirectory:
    orgs = {}
    async for name, _ in db.query(ORGS_PK):
        org = await load_org(db, name)
        if org is not None:
            orgs[name] = org
    return OrgDirectory(orgs=orgs, creators=creators)


async def require_org(db: RegistryDatabase, name: str) -> Org:
    org = await load_org(db, valid_org(name))
    if org is None:
        raise NotFoundError(f"organization {name} not found")
    return org


def require_team(org: Org, team: str) -> Team:
    found = org.teams.get(valid_team(team))
    if found is None:
        raise NotFoundError(f"team @{org.name}:{team} not found")
    return found


async def create_org(db: RegistryDatabase, name: str, owner: str) -> Org:
    """A new org with `owner` as its first owner and its `developers` team. The packages of
    its scope published before it are recorded as public, as they were (their maintainers
    keep them; the org's teams get grants on them when an owner gives some)."""
    try:
        await db.put(ORGS_PK, valid_org(name), {"name": name, "created": now_iso(), "created_by": owner}, if_absent=True)
    except Conflict:
        raise ConflictError(f"organization {name} already exists") from None
    async for package, _ in db.query("PACKAGE", f"@{name}/"):
        await db.put(org_pk(name), f"VIS#{package}", {"public": True})
    await db.put(org_pk(name), f"TEAM#{DEVELOPERS}", {"description": "every member of the org"})
    return await set_member(db, await require_org(db, name), owner, "owner")


async def set_member(db: RegistryDatabase, org: Org, user: str, role: str) -> Org:
    """Add `user` with `role` (joining `developers` when new), or change their role."""
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    new = user not in org.members
    if new and len(org.members) >= MAX_MEMBERS:
        raise ConflictError(f"an organization has at most {MAX_MEMBERS} members")
    if not new and org.members[user] == "owner" and role != "owner":
        _keep_an_owner(org, user)
    await db.put(org_pk(org.name), f"MEMBER#{user}", {"user": user, "role": role})
    if new and DEVELOPERS in org.teams:
        await db.put(org_pk(org.name), f"TEAMMEMBER#{DEVELOPERS}#{user}", {})
    await _changed(db)
    return replace(org, members={**org.members, user: role})


def _keep_an_owner(org: Org, user: str) -> None:
    if [u for u, r in org.members.items() if r == "owner"] == [user]:
        raise ConflictError(f"{user} is the last owner of {org.name}; make someone else an owner first")


async def remove_member(db: RegistryDatabase, org: Org, user: str) -> Org:
    """Take `user` out of the org and all its teams."""
    if user not in org.members:
        raise NotFoundError(f"{user} is not a member of {org.name}")
    if org.members[user] == "owner":
        _keep_an_owner(org, user)
    for team in org.teams.values():
        if user in team.members:
            await _delete(db, org_pk(org.name), f"TEAMMEMBER#{team.name}#{user}")
    await _delete(db, org_pk(org.name), f"MEMBER#{user}")
    await _changed(db)
    return replace(org, members={u: r for u, r in org.members.items() if u != user})


async def create_team(db: RegistryDatabase, org: Org, team: str, description: str = "") -> Team:
    if valid_team(team) in org.teams:
        raise ConflictError(f"team @{org.name}:{team} already exists")
    if len(org.teams) >= MAX_TEAMS:
        raise ConflictError(f"an organization has at most {MAX_TEAMS} teams")
    if len(description) > MAX_DESCRIPTION:
        raise BadRequest(f"a team description has at most {MAX_DESCRIPTION} characters")
    await db.put(org_pk(org.name), f"TEAM#{team}", {"description": description}, if_absent=True)
    await _changed(db)
    return Team(team, description)


async def destroy_team(db: RegistryDatabase, org: Org, team: str) -> None:
    found = require_team(org, team)
    if found.name == DEVELOPERS:
        raise BadRequest(f"the {DEVELOPERS} team cannot be destroyed")
    await _delete(db, org_pk(org.name), f"TEAM#{team}")  # first: what is left is no longer a team
    for user in found.members:
        await _delete(db, org_pk(org.name), f"TEAMMEMBER#{team}#{user}")
    for package in found.grants:
        await _delete(db, org_pk(org.name), f"GRANT#{team}#{package}")
    await _changed(db)


async def add_team_member(db: RegistryDatabase, org: Org, team: str, user: str) -> None:
    require_team(org, team)
    if user not in org.members:
        raise NotFoundError(f"{user} is not a member of {org.name}: npm org set {org.name} {user} first")
    await db.put(org_pk(org.name), f"TEAMMEMBER#{team}#{user}", {})
    await _changed(db)


async def remove_team_member(db: RegistryDatabase, org: Org, team: str, user: str) -> None:
    if user not in require_team(org, team).members:
        raise NotFoundError(f"{user} is not in @{org.name}:{team}")
    await _delete(db, org_pk(org.name), f"TEAMMEMBER#{team}#{user}")
    await _changed(db)


async def grant(db: RegistryDatabase, org: Org, team: str, package: str, level: str) -> None:
    require_team(org, team)
    await db.put(org_pk(org.name), f"GRANT#{team}#{package}", {"permissions": level})
    await _changed(db)


async def revoke(db: RegistryDatabase, org: Org, team: str, package: str) -> None:
    if package not in require_team(org, team).grants:
        raise NotFoundError(f"@{org.name}:{team} has no grant on {package}")
    await _delete(db, org_pk(org.name), f"GRANT#{team}#{package}")
    await _changed(db)


async def set_visibility(db: RegistryDatabase, org: Org, package: str, public: bool) -> None:
    await db.put(org_pk(org.name), f"VIS#{package}", {"public": public})
    await _changed(db)


async def adopt_package(db: RegistryDatabase, org: Org, package: str, *, public: bool) -> None:
    """A member created `package` in the org's scope: record its visibility, and give the
    `developers` team write on it, as the public registry does."""
    await db.put(org_pk(org.name), f"VIS#{package}", {"public": public})
    if DEVELOPERS in org.teams:
        await db.put(org_pk(org.name), f"GRANT#{DEVELOPERS}#{package}", {"permissions": "write"})
    await _changed(db)


async def _delete(db: RegistryDatabase, pk: str, sk: str) -> None:
    try:
        await db.delete(pk, sk)
    except NotFound:
        pass
