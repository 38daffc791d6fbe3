"""Granular token grants: `pkg:read=@acme/*`, `pkg:read+write=left-pad`, `user:read=~alice`.

A grant has a type (`pkg` or `user`), an access level (read, or read+write)
and a value: `*`, a package name, a scope glob `@scope/*`, or a user
selector `~name`. Types are evaluated on their own: a user grant never lets
a token touch a package, and the reverse.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
        return name.startswith(value[:-1]) and "/" not in name[len(value) - 1:]
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
