"""npm version ranges for the mirror policy, matched the way Verdaccio's package-filter does.

A block or allow rule names versions with npm's range syntax (`3.3.6`,
`>=2.0.0 <2.4.1`, `^1.2`, `1.x || 3.0.0 - 3.2`). python-semver (a project
dependency) orders versions but has no `^`, `~`, x-ranges or `||`, so the
grammar is desugared here into comparator sets, as npm's `semver` does it.

Matching is npm's `satisfies(version, range, {includePrerelease: true,
loose: true})`, which is what Verdaccio's filter calls: a prerelease is
matched by plain semver precedence (`>=3.0.0` covers `3.1.0-beta.1`), so a
block on a compromised line also covers that line's prereleases. The upper
bounds npm adds (`^1.2.3` is `>=1.2.3 <2.0.0-0`) keep `2.0.0-beta` outside
`^1`, which matters for an allow rule: allowing `^1` must not let the next
major's prereleases through.

The PyPI `node-semver` port was considered and refused: its
`include_prerelease` makes `3.0.1-beta` compare equal to `3.0.1`, so
allowing `3.0.1` would have allowed any prerelease of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import semver

_IDENT = r"[0-9A-Za-z-]+"
_PART = r"(\d+|[xX*])"
# A (partial) version as npm's loose grammar reads it: `v1.2.3`, `=1.2`, `1.x`, `1.2.3-beta.1+build`.
_PARTIAL = (
    rf"[v=\s]*{_PART}(?:\.{_PART}(?:\.{_PART}"
    rf"(?:-?({_IDENT}(?:\.{_IDENT})*))?(?:\+{_IDENT}(?:\.{_IDENT})*)?)?)?"
)
_PARTIAL_RE = re.compile(rf"^{_PARTIAL}$")
_HYPHEN_RE = re.compile(rf"^\s*({_PARTIAL})\s+-\s+({_PARTIAL})\s*$")
_OPERATOR_SPACE = re.compile(r"(<=|>=|<|>|=|~>|~|\^)\s+")
_TOKEN_RE = re.compile(r"^(<=|>=|<|>|=|~>|~|\^)?(.*)$")
_LOOSE_PREFIX = re.compile(r"^[v=\s]+")

Comparator = tuple[str, semver.Version]
_NOTHING: tuple[Comparator, ...] = (("<", semver.Version(0, 0, 0, prerelease="0")),)
_OPS = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
    "=": lambda c: c == 0,
}


class RangeError(ValueError):
    """Text that is not an npm version range."""


@dataclass(frozen=True)
class VersionRange:
    """A parsed npm range: alternatives (`||`) of comparator sets; an empty set matches every version."""

    raw: str
    sets: tuple[tuple[Comparator, ...], ...]

    def contains(self, version: str) -> bool:
        """True when `version` satisfies the range (prereleases included); False for a non-semver string."""
        parsed = parse_loose(version)
        if parsed is None:
            return False
        return any(all(_OPS[op](parsed.compare(bound)) for op, bound in group) for group in self.sets)


def parse_loose(version: str) -> semver.Version | None:
    """`version` as a semver.Version, allowing npm's loose `v`/`=` prefix; None when it is not one."""
    if not isinstance(version, str):
        return None
    try:
        return semver.Version.parse(_LOOSE_PREFIX.sub("", version.strip()))
    except ValueError:
        return None


def parse_range(text: str) -> VersionRange:
    """Parse npm's range grammar; raise RangeError on anything `semver.validRange` would refuse."""
    if not isinstance(text, str):
        raise RangeError("a version range must be a string")
    sets = tuple(_parse_alternative(part) for part in re.split(r"\s*\|\|\s*", text.strip()))
    return VersionRange(raw=text.strip(), sets=sets)


def _parse_alternative(text: str) -> tuple[Comparator, ...]:
    hyphen = _HYPHEN_RE.match(text)
    if hyphen:
        return _hyphen(_partial(hyphen.group(1)), _partial(hyphen.group(6)))
    comparators: list[Comparator] = []
    for token in _OPERATOR_SPACE.sub(r"\1", text).split():
        operator, version = _TOKEN_RE.match(token).groups()  # type: ignore[union-attr]
        parts = _partial(version or "*")
        if parts[0] is None and operator in ("<", ">"):
            return _NOTHING
        if operator in ("~", "~>"):
            comparators += _tilde(parts)
        elif operator == "^":
            comparators += _caret(parts)
        else:
            comparators += _xrange(operator or "", parts)
    return tuple(comparators)


_Parts = tuple[int | None, int | None, int | None, str | None]


def _partial(text: str) -> _Parts:
    """(major, minor, patch, prerelease) with None for a missing or x part."""
    match = _PARTIAL_RE.match(text)
    if not match:
        raise RangeError(f"{text!r} is not a version")

    def number(index: int) -> int | None:
        value = match.group(index)
        return None if value is None or value in ("x", "X", "*") else int(value)

    major = number(1)
    minor = number(2) if major is not None else None
    patch = number(3) if minor is not None else None
    prerelease = match.group(4) if patch is not None else None
    return major, minor, patch, prerelease


def _v(major: int, minor: int, patch: int, prerelease: str | None = None) -> semver.Version:
    return semver.Version(major, minor, patch, prerelease=prerelease)


def _xrange(operator: str, parts: _Parts) -> list[Comparator]:
    major, minor, patch, prerelease = parts
    if major is None:
        return []  # `*`, `>=*`, `=x`: any version
    if minor is not None and patch is not None:
        return [(operator or "=", _v(major, minor, patch, prerelease))]
    # A partial with an operator: `>1.2` is `>=1.3.0-0`, `<=1` is `<2.0.0-0`, `<1.2` is `<1.2.0-0`.
    if operator == ">":
        return [(">=", _v(major + 1, 0, 0, "0") if minor is None else _v(major, minor + 1, 0, "0"))]
    if operator == "<=":
        return [("<", _v(major + 1, 0, 0, "0") if minor is None else _v(major, minor + 1, 0, "0"))]
    if operator == "<":
        return [("<", _v(major, minor or 0, 0, "0"))]
    if operator == ">=":
        return [(">=", _v(major, minor or 0, 0, "0"))]
    # `1.2`, `1.x`, `=1`: the whole line, its prereleases included.
    if minor is None:
        return [(">=", _v(major, 0, 0, "0")), ("<", _v(major + 1, 0, 0, "0"))]
    return [(">=", _v(major, minor, 0, "0")), ("<", _v(major, minor + 1, 0, "0"))]


def _tilde(parts: _Parts) -> list[Comparator]:
    major, minor, patch, prerelease = parts
    if major is None:
        return []
    if minor is None:
        return [(">=", _v(major, 0, 0)), ("<", _v(major + 1, 0, 0, "0"))]
    return [(">=", _v(major, minor, patch or 0, prerelease)), ("<", _v(major, minor + 1, 0, "0"))]


def _caret(parts: _Parts) -> list[Comparator]:
    major, minor, patch, prerelease = parts
    if major is None:
        return []
    if minor is None:
        return [(">=", _v(major, 0, 0, "0")), ("<", _v(major + 1, 0, 0, "0"))]
    if patch is None:
        low = _v(major, minor, 0, "0")
        high = _v(major + 1, 0, 0, "0") if major else _v(0, minor + 1, 0, "0")
        return [(">=", low), ("<", high)]
    low = _v(major, minor, patch, prerelease)
    if major:
        high = _v(major + 1, 0, 0, "0")
    elif minor:
        high = _v(0, minor + 1, 0, "0")
    else:
        high = _v(0, 0, patch + 1, "0")
    return [(">=", low), ("<", high)]


def _hyphen(low: _Parts, high: _Parts) -> tuple[Comparator, ...]:
    comparators: list[Comparator] = []
    l_major, l_minor, l_patch, l_pre = low
    if l_major is not None:
        full = l_minor is not None and l_patch is not None
        comparators.append((">=", _v(l_major, l_minor or 0, l_patch or 0, l_pre if full and l_pre else "0")))
    h_major, h_minor, h_patch, h_pre = high
    if h_major is not None:
        if h_minor is None:
            comparators.append(("<", _v(h_major + 1, 0, 0, "0")))
        elif h_patch is None:
            comparators.append(("<", _v(h_major, h_minor + 1, 0, "0")))
        elif h_pre:
            comparators.append(("<=", _v(h_major, h_minor, h_patch, h_pre)))
        else:
            comparators.append(("<", _v(h_major, h_minor, h_patch + 1, "0")))
    return tuple(comparators)
