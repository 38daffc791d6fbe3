"""The one package access decision: `packages:` rule, who is asking, token grants.

Every handler that reads or changes a package asks `decide` (through
registry.http.access), so a refusal has one status for one reason everywhere:
404 when no rule matches the name, 401 when the request must log in, 403 when
a known principal (or its token) may not. The layers, outermost first: the
rule's principals are the law, the token's read-only flag and grants narrow
what its user may do, and never what an anonymous request would get.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from registry.domain.grants import Grant, allows
from registry.domain.orgs import OrgDirectory, OrgOutcome
from registry.domain.rules import ALL, ANONYMOUS, AUTHENTICATED, PackageRule
from registry.domain.trust_configs import (
    CREATE_PACKAGE,
    CREATE_STAGED_PACKAGE,
    MANAGE_DIST_TAGS,
)

READ_ONLY = "this token is read-only"
TRUSTED_VERBS = {CREATE_PACKAGE: "publish", CREATE_STAGED_PACKAGE: "stage", MANAGE_DIST_TAGS: "change dist-tags of"}


@dataclass(frozen=True)
class TrustedScope:
    """What a token from a trusted-publishing exchange may do (trusted_tokens.py)."""

    package: str
    provider: str  # the trust configuration's type: github, gitlab, circleci, or an issuer's name
    config: str  # the trust configuration it came from
    permissions: frozenset[str]  # createPackage, createStagedPackage, manageDistTags

    def refusal(self, what: str) -> str:
        allowed = ", ".join(sorted(self.permissions)) or "nothing"
        return (
            f"this token from trusted publishing may not {what}: its trust configuration allows"
            f" {allowed} on {self.package}"
        )
LOG_IN = "authentication required; log in with `npm login`"


@dataclass(frozen=True)
class Identity:
    """An authenticated principal: the user, and the token's limits if a token was used.

    `grants` None: the user's full rights (passwords, and tokens from `npm
    login` or `npm token create` without grants). `str(grant)` gives a
    grant's string form back.
    """

    user: str
    token_key: str | None = None
    readonly: bool = False
    grants: tuple[Grant, ...] | None = None
    # The token's other limits, which a token it creates may not exceed.
    expires: int | None = None
    cidrs: tuple[str, ...] = ()
    rate_limit: int | None = None
    # Made with `npm token create --bypass-2fa`: package writes need no one-time password
    # (unless the package says `mfa=publish`).
    bypass_2fa: bool = False
    # A token from a trusted-publishing exchange: see TrustedScope and `decide`.
    trusted: TrustedScope | None = None


class Action(Enum):
    """What a request does to a package, and which principals of its rule say yes."""

    READ = "access"  # packument, manifest, tarball, dist-tags; search and web visibility
    PUBLISH = "publish"  # publish, deprecate, owners, dist-tag changes
    UNPUBLISH = "unpublish"  # versions or the whole package
    STAR = "star"  # any reader may star, but it is a write of the packument

    @property
    def writes(self) -> bool:
        return self is not Action.READ

    def principals(self, rule: PackageRule) -> tuple[str, ...]:
        if self is Action.PUBLISH:
            return rule.publish
        if self is Action.UNPUBLISH:
            return rule.unpublish
        return rule.access

    @property
    def verb(self) -> str:
        """The word the 403 message uses: starring needs read access to the package."""
        return "access" if self is Action.STAR else self.value


class Outcome(Enum):
    ALLOWED = 200
    NO_RULE = 404  # no `packages:` rule matches: nothing is allowed, as in Verdaccio
    NEEDS_LOGIN = 401
    FORBIDDEN = 403


@dataclass(frozen=True)
class Verdict:
    """The decision and, when it refuses, the message npm prints."""

    outcome: Outcome
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED


ALLOWED = Verdict(Outcome.ALLOWED)


def is_allowed(identity: Identity | None, principals: Sequence[str]) -> bool:
    """Whether `identity` is one of `principals` (`$all`, `$anonymous`, `$authenticated`, names)."""
    for principal in principals:
        if principal == ALL:
            return True
        if principal == ANONYMOUS and identity is None:
            return True
        if identity is not None and principal in (AUTHENTICATED, identity.user):
            return True
    return False


def grant_allows(
    identity: Identity | None, kind: str, target: str, *, write: bool, anonymous_ok: bool = False
) -> bool:
    """Whether the token's own limits let `identity` read or write `target`.

    `kind` is "pkg" (target: a package name) or "user" (target: a user name).
    Anonymous requests and full-rights tokens have no limits here (the
    `packages:` rules decide). `anonymous_ok` says anonymous requests may do
    this too (a package everyone may read): a grant never takes away what
    leaving the token out of the request would give.
    """
    if identity is None:
        return True
    if write and identity.readonly:
        return False
    if identity.grants is None or (anonymous_ok and not write):
        return True
    return allows(identity.grants, kind, target, write=write)


def grant_refusal(identity: Identity | None, kind: str, target: str, *, write: bool) -> str:
    """The message for a request the token's limits refuse (see grant_allows)."""
    if write and identity is not None and identity.readonly:
        return READ_ONLY
    level = "read+write" if write else "read"
    if kind == "pkg":
        action = "write" if write else "read"
        return f"this token may not {action} {target}: it has no pkg:{level} grant that covers it"
    action = "change" if write else "read"
    return f"this token may not {action} user {target}: it has no user:{level} grant for ~{target}"


def decide(
    rule: PackageRule | None, identity: Identity | None, name: str, action: Action, *, permission: str | None = None,
    orgs: OrgDirectory | None = None,
) -> Verdict:
    """May `identity` (None: anonymous) do `action` to package `name` under `rule`?

    A read looks at the rule first: an unknown name is 404 to everyone. A
    write asks who is asking first (401 anonymous, 403 read-only token or no
    write grant), so nothing about the rules leaks to a request that could
    not write anyway. `permission` names what a trusted-publishing token
    needs for this write (`createPackage`, `createStagedPackage`,
    `manageDistTags`); None: such a token may not do it at all. `orgs`: the
    organizations, the inner layer: a package of an org's scope needs the
    org's say too (orgs.py), and a private one is, to whoever may not read
    it, a package that does not exist.
    """
    if action.writes:
        if identity is None:
            return Verdict(Outcome.NEEDS_LOGIN, LOG_IN)
        if identity.readonly:
            return Verdict(Outcome.FORBIDDEN, READ_ONLY)
        if not grant_allows(identity, "pkg", name, write=True):
            return Verdict(Outcome.FORBIDDEN, grant_refusal(identity, "pkg", name, write=True))
        trusted = identity.trusted
        if trusted is not None and (permission is None or permission not in trusted.permissions):
            what = TRUSTED_VERBS.get(permission or "", "change")
            return Verdict(Outcome.FORBIDDEN, trusted.refusal(f"{what} {name}"))
    if rule is None:
        return Verdict(Outcome.NO_RULE, f"no such package available: {name}")
    principals = action.principals(rule)
    if not is_allowed(identity, principals):
        if identity is None:
            return Verdict(Outcome.NEEDS_LOGIN, f"authentication required to access package {name}")
        return Verdict(Outcome.FORBIDDEN, f"{identity.user} may not {action.verb} package {name}")
    if orgs is not None:
        writes = action.writes and action is not Action.STAR
        outcome, message = orgs.verdict(identity.user if identity else None, name, write=writes)
        if outcome is not OrgOutcome.ALLOWED:
            return Verdict(Outcome.NO_RULE if outcome is OrgOutcome.HIDDEN else Outcome.FORBIDDEN, message)
    if not action.writes:
        everyone = is_allowed(None, principals) and (
            orgs is None or orgs.verdict(None, name, write=False)[0] is OrgOutcome.ALLOWED
        )
        if not grant_allows(identity, "pkg", name, write=False, anonymous_ok=everyone):
            return Verdict(Outcome.FORBIDDEN, grant_refusal(identity, "pkg", name, write=False))
    return ALLOWED


def may_read(
    rule: PackageRule | None, identity: Identity | None, name: str, orgs: OrgDirectory | None = None
) -> bool:
    """Whether `identity` sees package `name` at all (search, package list, web pages)."""
    return decide(rule, identity, name, Action.READ, orgs=orgs).allowed


def may_read_principals(
    identity: Identity | None, name: str, access: Sequence[str], orgs: OrgDirectory | None = None
) -> bool:
    """`may_read` for a caller that holds the rule's `access` principals, not the rule."""
    if orgs is not None:
        if orgs.verdict(identity.user if identity else None, name, write=False)[0] is not OrgOutcome.ALLOWED:
            return False
        everyone = is_allowed(None, access) and orgs.verdict(None, name, write=False)[0] is OrgOutcome.ALLOWED
    else:
        everyone = is_allowed(None, access)
    return is_allowed(identity, access) and grant_allows(
        identity, "pkg", name, write=False, anonymous_ok=everyone
    )
