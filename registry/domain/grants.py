"""Granular token grants: `pkg:read=@acme/*`, `pkg:read+write=left-pad`, `user:read=~alice`.

A grant has a type (`pkg` or `user`), an access level (read, or read+write)
and a value: `*`, a package name, a scope glob `@scope/*`, or a user
selector `~name`. Types are evaluated on their own: a user grant never lets
a token touch a package, and the reverse.

A token without grants (`npm login`, `npm token create`) has its user's full
rights; a token with grants has at most those, and never more than its user:
the `packages:` rules and the maintainer checks still apply on top.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

LOG = logging.getLogger(__name__)

GRANT = re.compile(r"^(?P<type>pkg|user):(?P<level>read|read\+write)=(?P<value>\S+)$")
SCOPE_GLOB = re.compile(r"^@[a-z0-9][a-z0-9._~-]*/\*$")
USER_SELECTOR = re.compile(r"^~[a-z0-9][a-z0-9._-]{0,63}$")
PACKAGE_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")


@dataclass(frozen=True)
class Grant:
    type: str  # "pkg" | "user"
    write: bool
    value: str  # "*", "left-pad", "@acme/ui", "@acme/*", "~alice"

    def __str__(self) -> str:
        return f"{self.type}:{'read+write' if self.write else 'read'}={self.value}"


def parse_grant(text: str) -> Grant:
    """One grant from its string form; ValueError with a printable message otherwise."""
    match = GRANT.match(text.strip())
    if match is None:
        raise ValueError(
            f"invalid grant {text!r}: use TYPE:LEVEL=VALUE, e.g. pkg:read+write=@acme/* or user:read=~alice"
        )
    kind, value = match["type"], match["value"]
    if kind == "pkg" and not (value == "*" or SCOPE_GLOB.match(value) or PACKAGE_NAME.match(value)):
        raise ValueError(f"invalid grant {text!r}: a pkg grant names *, a package, or @scope/*")
    if kind == "user" and not (value == "*" or USER_SELECTOR.match(value)):
        raise ValueError(f"invalid grant {text!r}: a user grant names * or ~username")
    return Grant(kind, match["level"] == "read+write", value)


def parse_grants(texts: Iterable[str]) -> tuple[Grant, ...]:
    """Every grant of a list; ValueError on the first bad one, or on an empty list."""
    grants = tuple(parse_grant(str(t)) for t in texts)
    if not grants:
        raise ValueError("a token with grants needs at least one grant")
    return grants


def format_grants(grants: Sequence[Grant]) -> list[str]:
    return [str(g) for g in grants]


def matches_package(value: str, name: str) -> bool:
    """`*`, the exact name, or `@scope/*` for exactly that scope (never `@scopex/...` nor `scope`)."""
    if value == "*":
        return True
    if value.endswith("/*"):
        rest = name[len(value) - 1:]
        return name.startswith(value[:-1]) and bool(rest) and "/" not in rest
    return value == name


def matches_user(value: str, user: str) -> bool:
    return value == "*" or value == f"~{user}"


def allows(grants: Sequence[Grant], kind: str, target: str, *, write: bool) -> bool:
    """Does any grant of `kind` cover `target` at the needed level?"""
    for grant in grants:
        if grant.type != kind or (write and not grant.write):
            continue
        if kind == "pkg" and matches_package(grant.value, target):
            return True
        if kind == "user" and matches_user(grant.value, target):
            return True
    return False


def covers_value(held: Grant, wanted: Grant) -> bool:
    """Whether `held`'s value matches everything `wanted`'s does."""
    if held.value == "*" or held.value == wanted.value:
        return True
    if held.type == "pkg" and held.value.endswith("/*") and not wanted.value.endswith("/*"):
        return matches_package(held.value, wanted.value)
    return False


def covers(grants: Sequence[Grant], wanted: Grant) -> bool:
    """Whether `grants` allow everything `wanted` does: what a token may hand on to a new token."""
    return any(
        held.type == wanted.type and (held.write or not wanted.write) and covers_value(held, wanted)
        for held in grants
    )


@lru_cache(maxsize=4096)
def stored_grants(texts: tuple[str, ...]) -> tuple[Grant, ...]:
    """The grants of a stored token record; none at all (nothing allowed) when one is corrupt.

    Cached: the same few grant lists are parsed on every request of a token.
    """
    try:
        return parse_grants(texts)
    except ValueError as exc:
        LOG.error("a stored token has an invalid grant list; it is allowed nothing: %s", exc)
        return ()


# -- expiry -------------------------------------------------------------------

MAX_TOKEN_DAYS = 3650
EXPIRES_HELP = "expires must be a whole number of days (1 to 3650) or an ISO 8601 date in the future"


def parse_expires(value: Any, now: float) -> int | None:
    """The expiry (epoch seconds) of a `npm token create` body's `expires`; ValueError otherwise.

    npm sends a whole number of days; API clients may give the moment itself
    as an ISO 8601 date or date-time (`2030-01-31`, `2030-01-31T12:00:00Z`),
    read as UTC when it has no offset. Bare seconds are not accepted: a number
    is always days, as npm means it.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_TOKEN_DAYS:
            raise ValueError(EXPIRES_HELP)
        return int(now) + value * 86400
    if not isinstance(value, str):
        raise ValueError(EXPIRES_HELP)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(EXPIRES_HELP) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    epoch = int(moment.timestamp())
    if not now < epoch <= now + MAX_TOKEN_DAYS * 86400:
        raise ValueError(EXPIRES_HELP)
    return epoch
