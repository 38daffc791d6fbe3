"""OSV advisories (the Open Source Vulnerabilities format) as block rules of the mirror policy.

An advisory names affected packages by ecosystem and name, and their
versions by `ranges` (SEMVER or ECOSYSTEM events: `introduced`, `fixed`,
`last_affected`, `limit`) and/or an explicit `versions` list. Only npm
entries become rules; other ecosystems, and GIT ranges, are ignored.

Each npm entry becomes one block rule spec (`{package, versions, reason}`):

- every version affected (`introduced: "0"` with nothing closing it, as a
  malicious-package record `MAL-...` says) blocks the whole package: no
  `versions`;
- otherwise an npm range, one alternative per affected interval and per
  listed version the intervals do not already cover: `<1.0.1 || >=2.0.0
  <2.0.3 || 3.1.4`. `last_affected` is an inclusive bound (`<=`).

Events are sorted by version and walked as the OSV schema's evaluation does:
an `introduced` opens an interval, `fixed` closes it before that version,
`last_affected` after it, `limit` closes it and ends the walk.

Rule ids are derived from the advisory id (`osv-{id}` for one npm entry,
`osv-{id}-{n}` for several), so importing the same advisory again names the
same rules. A withdrawn advisory yields no rules, so an import removes
those it made before.

Everything here is pure and bounded: the caller passes bytes read with a
limit. An advisory that cannot be read raises AdvisoryError; an entry that
cannot be turned into a rule is left out and reported in `problems`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import semver

from registry.domain.policy_ranges import RangeError, parse_loose, parse_range
from registry.domain.policy_rules import MAX_REASON

ECOSYSTEM = "npm"
RULE_PREFIX = "osv-"
MAX_ADVISORY_BYTES = 1_000_000
MAX_RULE_ID = 128
MAX_MODIFIED = 64
# A rule holds its range as text in one database item; a longer list of versions is refused.
MAX_RANGE_TEXT = 16_000
MAX_ENTRIES = 1_000
RANGE_TYPES = ("SEMVER", "ECOSYSTEM")
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")

# An OSV id as the databases write them: `MAL-2024-1234`, `GHSA-xxxx-xxxx-xxxx`.
_ADVISORY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
# A package name as npm has ever allowed it (legacy capitals too), never a glob: `*`, `?`, `{`
# would turn the rule into a pattern over other packages.
_PACKAGE_NAME = re.compile(r"(@[A-Za-z0-9._~-]+/)?[A-Za-z0-9._~'!()-]+")
_MAX_NAME = 214
_SPACES = re.compile(r"\s+")
ZERO = semver.Version(0)

Spec = dict[str, Any]
# (lower bound or None for 0, upper operator "<" / "<=" or None, upper bound or None)
Interval = tuple[semver.Version | None, str | None, semver.Version | None]


class AdvisoryError(ValueError):
    """Bytes that are not an OSV advisory this importer can use."""


@dataclass(frozen=True)
class Advisory:
    """One advisory as rules: (rule id, spec) per npm entry, and what was left out and why."""

    id: str
    modified: str
    withdrawn: bool
    rules: tuple[tuple[str, Spec], ...] = ()
    problems: tuple[str, ...] = ()


def parse_advisory(data: bytes) -> Advisory:
    """An OSV JSON document as an Advisory; AdvisoryError when it is too big or not one."""
    if len(data) > MAX_ADVISORY_BYTES:
        raise AdvisoryError(f"larger than {MAX_ADVISORY_BYTES} bytes")
    try:
        record = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise AdvisoryError(f"not JSON: {exc}") from None
    return advisory_of(record)


def advisory_of(record: Any) -> Advisory:
    """A parsed OSV record as an Advisory; AdvisoryError without a usable id."""
    if not isinstance(record, dict):
        raise AdvisoryError("not a JSON object")
    advisory_id = record.get("id")
    if not isinstance(advisory_id, str) or not _ADVISORY_ID.fullmatch(advisory_id):
        raise AdvisoryError(f"no valid id: {str(advisory_id)[:80]!r}")
    # Room for `osv-` and `-{n}`.
    if len(RULE_PREFIX) + len(advisory_id) + 1 + len(str(MAX_ENTRIES)) > MAX_RULE_ID:
        raise AdvisoryError(f"id {advisory_id[:80]!r}… is too long")
    modified = record.get("modified")
    modified = modified[:MAX_MODIFIED] if isinstance(modified, str) else ""
    if record.get("withdrawn"):
        return Advisory(advisory_id, modified, withdrawn=True)
    affected = record.get("affected")
    entries = [
        entry for entry in (affected if isinstance(affected, list) else [])
        if isinstance(entry, dict) and _ecosystem(entry) == ECOSYSTEM
    ]
    problems: list[str] = []
    if len(entries) > MAX_ENTRIES:
        problems.append(f"{advisory_id}: {len(entries)} npm entries, only the first {MAX_ENTRIES} are read")
        entries = entries[:MAX_ENTRIES]
    reason = reason_of(advisory_id, record)
    rules = []
    for index, entry in enumerate(entries, start=1):
        rule_id = f"{RULE_PREFIX}{advisory_id}" if len(entries) == 1 else f"{RULE_PREFIX}{advisory_id}-{index}"
        try:
            rules.append((rule_id, entry_spec(entry, reason)))
        except AdvisoryError as exc:
            problems.append(f"{advisory_id}: npm entry {index}: {exc}")
    return Advisory(advisory_id, modified, withdrawn=False, rules=tuple(rules), problems=tuple(problems))


def older(modified: str, than: str) -> bool:
    """True when the OSV timestamp `modified` is earlier than `than`; False when either is unreadable."""
    first, second = _moment(modified), _moment(than)
    return first is not None and second is not None and first < second


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except (AttributeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def reason_of(advisory_id: str, record: dict[str, Any]) -> str:
    """`MAL-2024-1: Malicious code in foo (npm)`, on one line, cut to fit a rule's reason."""
    summary = record.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        details = record.get("details")
        summary = details.strip().split("\n", 1)[0] if isinstance(details, str) else ""
    text = _SPACES.sub(" ", f"{advisory_id}: {summary[:MAX_REASON * 2]}").strip().rstrip(":")
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 1].rstrip() + "…"
    return text


def entry_spec(entry: dict[str, Any], reason: str) -> Spec:
    """The block rule spec for one npm `affected` entry; AdvisoryError when it names no usable versions."""
    package = entry.get("package") or {}
    name = package.get("name") if isinstance(package, dict) else None
    if not isinstance(name, str) or len(name) > _MAX_NAME or not _PACKAGE_NAME.fullmatch(name):
        raise AdvisoryError(f"not an npm package name: {str(name)[:80]!r}")
    versions = affected_versions(entry)
    spec: Spec = {"package": name, "reason": reason}
    if versions is not None:
        spec["versions"] = versions
    return spec


def affected_versions(entry: dict[str, Any]) -> str | None:
    """The npm range an entry's ranges and versions cover; None when every version is affected."""
    ranges = entry.get("ranges")
    intervals: list[Interval] = []
    for item in ranges if isinstance(ranges, list) else []:
        if isinstance(item, dict) and item.get("type") in RANGE_TYPES:
            intervals += _intervals(item.get("events"))
    if any(low is None and high is None for low, _, high in intervals):
        return None
    alternatives = [_interval_text(interval) for interval in intervals]
    listed = entry.get("versions")
    try:
        covered = parse_range(" || ".join(alternatives)) if alternatives else None
        for raw in listed if isinstance(listed, list) else []:
            version = str(_version(raw))
            if (covered is None or not covered.contains(version)) and version not in alternatives:
                alternatives.append(version)
                if len(alternatives) * 6 > MAX_RANGE_TEXT:
                    break  # too long anyway; refused below without reading the rest
        if not alternatives:
            raise AdvisoryError("no SEMVER or ECOSYSTEM range and no versions")
        text = " || ".join(alternatives)
        if len(text) > MAX_RANGE_TEXT:
            raise AdvisoryError(f"its versions make a range longer than {MAX_RANGE_TEXT} characters")
        parse_range(text)
    except RangeError as exc:
        raise AdvisoryError(f"not an npm range: {exc}") from None
    return text


def _ecosystem(entry: dict[str, Any]) -> Any:
    package = entry.get("package")
    return package.get("ecosystem") if isinstance(package, dict) else None


def _version(raw: Any) -> semver.Version:
    version = parse_loose(raw) if isinstance(raw, str) and len(raw) <= 256 else None
    if version is None:
        raise AdvisoryError(f"{str(raw)[:80]!r} is not a semver version")
    return version


def _intervals(events: Any) -> list[Interval]:
    """The affected intervals of one range's events, walked in version order."""
    if not isinstance(events, list) or not events:
        raise AdvisoryError("a range without events")
    parsed: list[tuple[str, semver.Version | None]] = []
    for event in events:
        if not isinstance(event, dict) or len(event) != 1 or next(iter(event)) not in EVENT_KINDS:
            raise AdvisoryError(f"an event is not one of {', '.join(EVENT_KINDS)}: {str(event)[:80]}")
        kind, value = next(iter(event.items()))
        parsed.append((kind, None if kind == "introduced" and value == "0" else _version(value)))
    # "0" first, then by version; `sorted` is stable, so events at one version keep their order.
    parsed.sort(key=lambda event: (0, ZERO) if event[1] is None else (1, event[1]))
    intervals: list[Interval] = []
    low: semver.Version | None = None
    opened = False
    for kind, version in parsed:
        if kind == "introduced":
            if not opened:
                low, opened = version, True
            continue
        if opened:
            operator = "<=" if kind == "last_affected" else "<"
            if low is None or version > low or (operator == "<=" and version == low):
                intervals.append((low, operator, version))
            opened = False
        if kind == "limit":
            break
    if opened:
        intervals.append((low, None, None))
    return intervals


def _interval_text(interval: Interval) -> str:
    low, operator, high = interval
    parts = []
    if low is not None:
        parts.append(f">={low}")
    if high is not None:
        parts.append(f"{operator}{high}")
    return " ".join(parts)
