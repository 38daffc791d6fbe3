"""Organizations and teams: who may read and write the packages of an org's scope.

An org owns the scope of its name (`acme` owns `@acme/*`). Its members have
one role each, as npm defines them:
- owner: everything — members, teams, grants, visibility, and read+write on
  every package of the scope;
- admin: manages teams, team members and package grants; reads every package;
- developer: what the teams they are in are granted.
A team (`@acme:web`) holds members and per-package grants, `read` or `write`
(npm's read-only / read-write). Every org has a `developers` team that each
new member joins and that gets `write` on each package a member creates, as
on the public registry. A package of the scope is public or private; a
private one is read only by members with a grant (owners and admins: all).

`OrgDirectory` is an immutable snapshot of every org (org_store.py loads it,
every instance reloads it within seconds of a change); `OrgDirectory.verdict`
is the inner layer of the one access decision (registry.domain.access): it
only narrows what the `packages:` rules allow, never widens it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

ROLES = ("owner", "admin", "developer")
DEVELOPERS = "developers"
ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,213}$")
TEAM_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
READ, WRITE = "read", "write"


@dataclass(frozen=True)
class OrgsConfig:
    """`orgs:` in config.yaml: which roles may create a new package in an org's scope."""

    create_packages: tuple[str, ...] = ROLES


def parse_orgs(raw: object) -> OrgsConfig:
    if raw is None:
        return OrgsConfig()
    roles = raw.get("create_packages") if isinstance(raw, dict) and set(raw) <= {"create_packages"} else None
    if not isinstance(roles, list) or not roles or not set(roles) <= set(ROLES):
        raise ValueError(f"orgs.create_packages must be a list of roles ({', '.join(ROLES)})")
    return OrgsConfig(tuple(roles))


def scope_of(name: str) -> str | None:
    """`acme` for `@acme/ui`; None for an unscoped name."""
    if not name.startswith("@") or "/" not in name:
        return None
    return name[1:].split("/", 1)[0]


@dataclass(frozen=True)
class Team:
    name: str
    description: str = ""
    members: frozenset[str] = frozenset()
    grants: Mapping[str, str] = field(default_factory=dict)  # package -> read | write


@dataclass(frozen=True)
class Org:
    name: str
    members: Mapping[str, str] = field(default_factory=dict)  # user -> role
    teams: Mapping[str, Team] = field(default_factory=dict)
    visibility: Mapping[str, bool] = field(default_factory=dict)  # package -> public

    def role(self, user: str | None) -> str | None:
        return self.members.get(user) if user else None

    def permission(self, user: str | None, package: str) -> str | None:
        """What `user` may do to `package` through the org: write, read or None."""
        role = self.role(user)
        if role is None:
            return None
        if role == "owner":
            return WRITE
        best = READ if role == "admin" else None
        for team in self.teams.values():
            if user in team.members:
                granted = team.grants.get(package)
                if granted == WRITE:
                    return WRITE
                best = best or granted
        return best

    def is_public(self, package: str) -> bool:
        """Whether everyone may read `package`: only when the org says so. A package the org has
        no record of yet (just published on another instance, which records it within seconds)
        is private meanwhile; the packages of the scope that predate the org were recorded as
        public when it was created (org_store.create_org)."""
        return self.visibility.get(package, False)

    def knows(self, package: str) -> bool:
        """Whether the org has a record of `package` (a visibility or a grant): it exists in the org."""
        return package in self.visibility or any(package in t.grants for t in self.teams.values())

    def packages(self) -> dict[str, str]:
        """Every package the org records, with the widest grant any team has on it."""
        found: dict[str, str] = {p: READ for p in self.visibility}
        for team in self.teams.values():
            for package, level in team.grants.items():
                if found.get(package) != WRITE:
                    found[package] = level
        return found

    def collaborators(self, package: str) -> dict[str, str]:
        """Who may read or write `package` through the org, as `npm access list collaborators` shows."""
        people = {user: self.permission(user, package) for user in self.members}
        return {user: level for user, level in people.items() if level}


class OrgOutcome(Enum):
    ALLOWED = "allowed"
    HIDDEN = "hidden"  # a private package the caller may not read: the answer for a missing package
    FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class OrgDirectory:
    orgs: Mapping[str, Org] = field(default_factory=dict)
    # Which roles may create a new package in an org's scope (config `orgs.create_packages`).
    creators: tuple[str, ...] = ROLES

    def org_for(self, package: str) -> Org | None:
        scope = scope_of(package)
        return self.orgs.get(scope) if scope else None

    def verdict(self, user: str | None, package: str, *, write: bool) -> tuple[OrgOutcome, str]:
        """The org's say on `user` (None: anonymous) reading or writing `package`."""
        org = self.org_for(package)
        if org is None:
            return OrgOutcome.ALLOWED, ""
        permission = org.permission(user, package)
        if not write:
            if org.is_public(package) or permission is not None:
                return OrgOutcome.ALLOWED, ""
            return OrgOutcome.HIDDEN, f"no such package available: {package}"
        if permission == WRITE:
            return OrgOutcome.ALLOWED, ""
        role = org.role(user)
        if role is None:  # before the hidden check: an outsider learns nothing of private names
            return OrgOutcome.FORBIDDEN, f"{user} is not a member of the {org.name} organization, which owns @{org.name}/*"
        if not org.knows(package):
            # A new package of the scope, by a member who may create one; one that exists
            # but that the org has no record of still needs its maintainers (`writer`).
            if role in self.creators:
                return OrgOutcome.ALLOWED, ""
            return OrgOutcome.FORBIDDEN, (
                f"{user} may not create packages of @{org.name}: in {org.name} only {', '.join(self.creators)}"
                " members may"
            )
        if permission is None and not org.is_public(package):
            return OrgOutcome.HIDDEN, f"no such package available: {package}"
        return OrgOutcome.FORBIDDEN, (
            f"{user} may not change {package}: no team of {org.name} grants them read-write on it"
            f" (npm access grant read-write {org.name}:TEAM {package})"
        )

    def writer(self, user: str | None, package: str) -> bool:
        """Whether the org itself gives `user` write on `package` (then its maintainer list is not
        asked). Creating a package is not: for a name that exists, its maintainers still decide."""
        org = self.org_for(package)
        return org is not None and org.permission(user, package) == WRITE

    def user_packages(self, user: str) -> dict[str, str]:
        """Every org package `user` may read or write, with the level."""
        found: dict[str, str] = {}
        for org in self.orgs.values():
            for package in org.packages():
                level = org.permission(user, package)
                if level:
                    found[package] = level
        return found

