"""npm version ranges, enough to check a dependency tree: python-semver has no ^ or ~.

`satisfies("1.4.1", "^1.2.0")` answers as npm would for the range forms the
fake upstream's package sets write: ^, ~, x, comparators joined by spaces,
and alternatives joined by ||.
"""

from __future__ import annotations

import semver


def _partial(text: str) -> tuple[list[int], int]:
    """`1.2.x` → ([1, 2, 0], 2): the numbers and how many were given."""
    numbers: list[int] = []
    for part in text.lstrip("v=").split("-", 1)[0].split(".")[:3]:
        if part in ("x", "X", "*", ""):
            break
        numbers.append(int(part))
    return numbers + [0] * (3 - len(numbers)), len(numbers)


def _bump(numbers: list[int], index: int) -> semver.Version:
    upper = numbers[:index] + [0] * (3 - index)
    upper[index - 1] += 1
    return semver.Version(*upper)


def _comparator(token: str) -> list[tuple[str, semver.Version]]:
    op = next((op for op in (">=", "<=", ">", "<", "^", "~", "=") if token.startswith(op)), "")
    numbers, given = _partial(token[len(op) :])
    low = semver.Version(*numbers)
    if op in (">=", ">", "<", "<=") and given == 3:
        return [(op, low)]
    if op == ">=" or (op == "" and given == 0):
        return [(">=", low)]
    if op == "<":
        return [("<", low)]
    if op == "^":
        first = next((index for index, number in enumerate(numbers[:given]) if number), given - 1)
        return [(">=", low), ("<", _bump(numbers, max(first, 0) + 1))]
    if op == "~":
        return [(">=", low), ("<", _bump(numbers, min(max(given, 1), 2)))]
    if given == 3:
        return [("==", low)]
    return [(">=", low), ("<", _bump(numbers, given))]


def satisfies(version: str, npm_range: str) -> bool:
    parsed = semver.Version.parse(version)
    for alternative in npm_range.split("||"):
        checks = [check for token in alternative.split() for check in _comparator(token)]
        if all(parsed.match(f"{op}{bound}") for op, bound in checks):
            return True
    return False
