"""The package access check every handler calls: the domain's decision, raised as HTTP errors.

`authorize(request, name, action)` returns the matching rule and who is
asking, or raises NotFoundError (no rule), Unauthorized (log in first) or
Forbidden (known, but not allowed), with the message the decision gives.
`may_see` is the boolean form for lists (search, web pages), where a package
the visitor may not read is simply left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from registry.domain.access import (
    LOG_IN,
    Action,
    Identity,
    Outcome,
    decide,
    is_allowed,
    may_read,
)
from registry.domain.errors import Forbidden, NotFoundError, RegistryError, Unauthorized
from registry.domain.orgs import OrgOutcome
from registry.domain.rules import PackageRule, rule_for
from registry.http.appkeys import CONFIG
from registry.http.auth import identity_of
from registry.http.org_directory import orgs_of

REFUSALS: dict[Outcome, type[RegistryError]] = {
    Outcome.NO_RULE: NotFoundError,
    Outcome.NEEDS_LOGIN: Unauthorized,
    Outcome.FORBIDDEN: Forbidden,
}


@dataclass(frozen=True)
class Permit:
    """What an allowed request may go on with: the package's rule and who is asking."""

    rule: PackageRule
    identity: Identity | None
    # The package's org gives the user write on it (orgs.py): its maintainer list is not asked.
    org_writer: bool = False

    @property
    def user(self) -> str:
        """The acting user of a write (writes are never anonymous)."""
        if self.identity is None:
            raise Unauthorized(LOG_IN)
        return self.identity.user

    @property
    def maintainer(self) -> str | None:
        """Who must be among the package's maintainers for a change: the user, or None when
        the package's org grants them write (its teams, not the maintainer list, decide)."""
        return None if self.org_writer else self.user


def rule_of(request: web.Request, name: str) -> PackageRule | None:
    """The first `packages:` rule matching `name`; None when none does."""
    return rule_for(request.app[CONFIG].packages, name)


def authorize(request: web.Request, name: str, action: Action, *, permission: str | None = None) -> Permit:
    """The Permit for `action` on package `name`; raises 404/401/403 as `decide` says
    (`permission`: what a trusted-publishing token needs for it, see `decide`)."""
    rule = rule_of(request, name)
    identity = identity_of(request)
    orgs = orgs_of(request)
    verdict = decide(rule, identity, name, action, permission=permission, orgs=orgs)
    if not verdict.allowed:
        raise REFUSALS[verdict.outcome](verdict.message)
    assert rule is not None  # decide allows nothing without a rule
    writer = action.writes and identity is not None and orgs.writer(identity.user, name)
    return Permit(rule, identity, org_writer=writer)


def require_visible(request: web.Request, name: str) -> None:
    """Before a write looks package `name` up: who may not read it learns nothing of it.

    401 anonymous; for a caller the rule does not let read the package, the
    same 404 as for a package that does not exist, so a write never confirms
    that a private name exists. After this, existence and then `authorize`.
    """
    identity = identity_of(request)
    if identity is None:
        raise Unauthorized(LOG_IN)
    rule = rule_of(request, name)
    if rule is None or not is_allowed(identity, rule.access):
        raise NotFoundError(f"package {name} not found")
    if orgs_of(request).verdict(identity.user, name, write=False)[0] is not OrgOutcome.ALLOWED:
        raise NotFoundError(f"package {name} not found")  # private to an org the caller is not in


def may_see(request: web.Request, name: str) -> PackageRule | None:
    """The package's rule when the visitor may read it; None for a name they may not see."""
    rule = rule_of(request, name)
    if rule is None or not may_read(rule, identity_of(request), name, orgs_of(request)):
        return None
    return rule


class Sight:
    """`may_see` for the many names of one list (search, the front page): decided once per
    `packages:` rule where the name itself cannot change the answer (registry.domain.package_index).

    For a name outside every org's scope, `decide` reads only its rule, who is asking and,
    for a token with grants, the name: so a rule's answer holds for all its names unless the
    caller's token has grants and the rule does not let everyone read.
    """

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.rules = request.app[CONFIG].packages
        self.identity = identity_of(request)
        self.orgs = orgs_of(request)

    def rule(self, index: int) -> bool | None:
        if index == -1:
            return False  # no rule: nothing is allowed
        if not 0 <= index < len(self.rules):
            return None
        access = self.rules[index].access
        if not is_allowed(self.identity, access):
            return False
        if self.identity is None or self.identity.grants is None or is_allowed(None, access):
            return True
        return None

    def org_scopes(self) -> Iterable[str]:
        return self.orgs.orgs.keys()

    def name(self, name: str) -> bool:
        return may_see(self.request, name) is not None
