"""The mirror policy applied to a packument: which versions a client sees, and why not the others.

`visible(doc, policy, now, local=...)` is pure: it returns a new document and
leaves its input alone, so the renderer can run it once per document, policy
change and quarantine expiry (`Verdict.next_change`) and cache the bytes.

Precedence, for each version (an expired rule counts as absent):

1. `applies_to: uplinks` (the default) holds a document published here
   only to an admin's run-time rules (Policy.for_local); `all` holds local
   publishes to the whole policy.
2. An allow rule covering the version shows it, whatever else says: it beats
   block rules, `freeze_before`, `unknown_age`, `min_age` and
   `exclude_deprecated`. This is Verdaccio's rule ("allow takes precedence
   over all blocking rules, even minAgeDays and dateThreshold"): an allow is
   a human decision about that version, made after looking at it.
3. A block rule covering it blocks it; when several do, a `remove` rule wins
   over a `replace` one (the stricter reading).
4. Otherwise `freeze_before` (published after it), `unknown_age: hide` (no
   usable `time` entry), `min_age` (too young: quarantined until publish time
   + min_age, visible from that instant on) and `exclude_deprecated` hide it.
   Ages matter only when min_age or freeze_before is set.

`strategy: replace` (a block rule's): the blocked version stays listed, with
the manifest of the newest version below it that is shown as itself (only
releases stand in for a release), its `version` field set to the blocked
one, so `npm install pkg@3.0.0` resolves and gets 2.0.1's tarball. Like
Verdaccio, a replaced version keeps its own `time` entry and is still held
to the age checks (a young one is hidden, not replaced), and when no version
can stand in it is hidden. Unlike Verdaccio, the stand-in is chosen by
semver among the versions shown as themselves: Verdaccio takes the previous
key of the `versions` object, so a backport published late, or a version
another range blocks, could stand in.

Dist-tags: a tag whose version is hidden moves to the newest shown version
of the same release line that is not above it; with none, the tag is
dropped. A release's line is the releases; a prerelease's line is the
prereleases whose first identifier starts with the same letters (`beta.3`,
`beta.10`, `beta5`; `canary-<sha>` builds are one line). `latest` looks in
the releases first, even when it pointed at a prerelease, then in that
prerelease's line. "Not above it" keeps a tag from jumping forward to a
major its maintainers had kept off that tag. A tag pointing at a replaced
version stays (the version is there). Verdaccio differs: it deletes every
other tag, and re-points `latest` by publish time to a version no other
tag names, falling back to a prerelease.

`time` loses the hidden versions' entries and keeps `created`, `modified`
and the rest unchanged (Verdaccio recomputes created/modified from what is
left); `_distfiles` (imported Verdaccio documents) loses entries no shown
version's tarball uses; the readme is not rewritten (Verdaccio appends
notes to it): the reason is in the 403 a client gets for a hidden version.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import semver

from registry.domain.packument import parse_version, tarball_file_of
from registry.domain.policy_rules import Policy, Rule, format_duration

Doc = dict[str, Any]
ReasonKind = Literal["block", "quarantine", "freeze", "unknown_age", "deprecated"]
_LINE = re.compile(r"[A-Za-z]*")


@dataclass(frozen=True)
class Reason:
    """Why a version is not served as itself: the rule's text, its note, and when it stops (if ever)."""

    kind: ReasonKind
    rule: str  # `rule 7`, `policy min_age=3d`
    detail: str | None = None
    until: datetime | None = None  # quarantine clears / block rule expires


@dataclass(frozen=True)
class Replacement:
    by: str
    reason: Reason


@dataclass(frozen=True)
class Verdict:
    """The filtered document and what the policy did to it.

    `doc` is a new top-level dict; nested values not changed by the policy
    are shared with the input, and neither may be mutated. `hidden` versions
    are gone from `doc`; `replaced` ones are listed with another version's
    manifest. `withheld_tarballs` maps a tarball file name to the version and
    reason a GET of it must be refused with (hidden and replaced versions'
    own files). `next_change` is the earliest moment the result changes by
    itself (a quarantine ends, a rule expires): cache until then.
    """

    doc: Doc
    hidden: Mapping[str, Reason]
    replaced: Mapping[str, Replacement]
    withheld_tarballs: Mapping[str, tuple[str, Reason]]
    next_change: datetime | None

    @property
    def changed(self) -> bool:
        return bool(self.hidden or self.replaced)


def visible(doc: Doc, policy: Policy, now: datetime, *, local: bool) -> Verdict:
    """Apply `policy` to packument `doc` at `now`; `local` says it was published here."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    versions = doc.get("versions")
    if local:
        policy = policy.for_local()
    if policy.is_noop or not isinstance(versions, dict):
        return Verdict(dict(doc), {}, {}, {}, None)
    name = str(doc.get("name") or "")
    times = doc["time"] if isinstance(doc.get("time"), dict) else {}
    rules = [rule for rule in policy.rules if rule.active(now) and rule.target.matches(name)]
    changes = [rule.expires for rule in rules if rule.expires is not None]
    hidden: dict[str, Reason] = {}
    to_replace: dict[str, Reason] = {}
    for version, manifest in versions.items():
        reason, replace, clears = _judge(version, manifest, times.get(version), policy, rules, now)
        if clears is not None:
            changes.append(clears)
        if reason is None:
            continue
        (to_replace if replace else hidden)[version] = reason
    replaced = _replacements(versions, hidden, to_replace)
    next_change = min((moment for moment in changes if moment > now), default=None)
    if not hidden and not replaced:
        return Verdict(dict(doc), {}, {}, {}, next_change)
    shown: dict[str, Any] = {}
    for version, manifest in versions.items():
        if version in replaced:
            stand_in = versions[replaced[version].by]
            shown[version] = {**stand_in, "version": version} if isinstance(stand_in, dict) else stand_in
        elif version not in hidden:
            shown[version] = manifest
    new = dict(doc)
    new["versions"] = shown
    if isinstance(doc.get("time"), dict):
        new["time"] = {key: value for key, value in doc["time"].items() if key not in hidden}
    if isinstance(doc.get("dist-tags"), dict):
        new["dist-tags"] = _retag(doc["dist-tags"], hidden, shown, replaced)
    if isinstance(doc.get("_distfiles"), dict):
        used = {_tarball_url(manifest) for manifest in shown.values()}
        new["_distfiles"] = {
            key: entry
            for key, entry in doc["_distfiles"].items()
            if isinstance(entry, dict) and entry.get("url") in used
        }
    return Verdict(new, hidden, replaced, _withheld(name, versions, shown, hidden, replaced), next_change)


def _judge(
    version: str, manifest: Any, published: Any, policy: Policy, rules: list[Rule], now: datetime
) -> tuple[Reason | None, bool, datetime | None]:
    """(why it is not shown as itself, whether to replace it, the quarantine end its fate hangs on)."""
    if any(rule.kind == "allow" and rule.covers(version) for rule in rules):
        return None, False, None
    blocks = [rule for rule in rules if rule.kind == "block" and rule.covers(version)]
    age = _age_reason(policy, _parse_time(published), now)
    clears = age.until if age is not None and age.kind == "quarantine" else None
    if blocks:
        block = next((rule for rule in blocks if rule.strategy == "remove"), blocks[0])
        reason = Reason("block", f"rule {block.id}", block.reason, block.expires)
        if block.strategy == "replace":
            return reason, age is None, clears  # replaced once it is old enough
        return reason, False, None
    if age is not None:
        return age, False, clears
    deprecated = manifest.get("deprecated") if isinstance(manifest, dict) else None
    if policy.exclude_deprecated and isinstance(deprecated, str) and deprecated:
        return Reason("deprecated", "policy exclude_deprecated", deprecated[:200]), False, None
    return None, False, None


def _age_reason(policy: Policy, published: datetime | None, now: datetime) -> Reason | None:
    if not policy.ages_matter:
        return None
    if published is None:
        if policy.unknown_age == "allow":
            return None
        return Reason("unknown_age", "policy unknown_age=hide", "its publish time is unknown")
    if policy.freeze_before is not None and published > policy.freeze_before:
        rule = f"policy freeze_before={_moment(policy.freeze_before)}"
        return Reason("freeze", rule, f"published {_moment(published)}")
    if policy.min_age is not None:
        clears = published + timedelta(seconds=policy.min_age)
        if now < clears:
            return Reason("quarantine", f"policy min_age={format_duration(policy.min_age)}", until=clears)
    return None


def _parse_time(value: Any) -> datetime | None:
    """A `time` entry (`2024-05-01T12:00:00.123Z`) as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _tarball_url(manifest: Any) -> Any:
    dist = manifest.get("dist") if isinstance(manifest, dict) else None
    return dist.get("tarball") if isinstance(dist, dict) else None


def _ordered(versions: Iterable[str], *skip: Mapping[str, Any]) -> list[tuple[semver.Version, str]]:
    """The semver-valid `versions` in none of the `skip` maps, lowest first."""
    parsed = [
        (p, v) for v in versions if not any(v in s for s in skip) and (p := parse_version(v)) is not None
    ]
    return sorted(parsed, key=lambda pair: pair[0])


def _replacements(
    versions: Mapping[str, Any], hidden: dict[str, Reason], to_replace: dict[str, Reason]
) -> dict[str, Replacement]:
    """Pick each replace-blocked version's stand-in; one with none joins `hidden`."""
    if not to_replace:
        return {}
    candidates = _ordered(versions, hidden, to_replace)
    replaced: dict[str, Replacement] = {}
    for version, reason in to_replace.items():
        target = parse_version(version)
        by = None
        for parsed, candidate in candidates:
            if target is None or parsed >= target:
                break
            if not parsed.prerelease or target.prerelease:
                by = candidate
        if by is None:
            hidden[version] = reason
        else:
            replaced[version] = Replacement(by, reason)
    return replaced


def _line(version: semver.Version) -> str | None:
    """None for a release; the leading letters of the first prerelease identifier otherwise."""
    if not version.prerelease:
        return None
    return _LINE.match(str(version.prerelease).split(".")[0]).group(0)  # type: ignore[union-attr]


def _retag(
    tags: dict[str, Any], hidden: Mapping[str, Reason], shown: Mapping[str, Any], replaced: Mapping[str, Replacement]
) -> dict[str, Any]:
    candidates = _ordered(shown, replaced)
    result: dict[str, Any] = {}
    for tag, target in tags.items():
        if not isinstance(target, str) or target not in hidden:
            result[tag] = target
            continue
        ceiling = parse_version(target)
        lines: list[str | None] = []
        if tag == "latest" or ceiling is None or not ceiling.prerelease:
            lines.append(None)
        if ceiling is not None and ceiling.prerelease:
            lines.append(_line(ceiling))
        for line in lines:
            best = None
            for parsed, version in candidates:
                if ceiling is not None and parsed > ceiling:
                    break
                if _line(parsed) == line:
                    best = version
            if best is not None:
                result[tag] = best
                break
    return result


def _withheld(
    name: str,
    versions: Mapping[str, Any],
    shown: Mapping[str, Any],
    hidden: Mapping[str, Reason],
    replaced: Mapping[str, Replacement],
) -> dict[str, tuple[str, Reason]]:
    """Tarball files of hidden and replaced versions that no shown manifest points at."""
    used = {tarball_file_of(name, version, manifest) for version, manifest in shown.items()}
    withheld: dict[str, tuple[str, Reason]] = {}
    reasons = {**hidden, **{version: r.reason for version, r in replaced.items()}}
    for version, reason in reasons.items():
        filename = tarball_file_of(name, version, versions.get(version))
        if filename not in used:
            withheld[filename] = (version, reason)
    return withheld


def _moment(moment: datetime) -> str:
    """`2026-12-10T14:00Z`, with seconds only when it has them."""
    moment = moment.astimezone(UTC)
    if moment.second or moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def _until(moment: datetime) -> str:
    """The first whole minute at or after `moment`: by then it has surely cleared."""
    moment = moment.astimezone(UTC)
    floor = moment.replace(second=0, microsecond=0)
    return _moment(floor if floor == moment else floor + timedelta(minutes=1))


def refusal(name: str, version: str, reason: Reason) -> str:
    """The message npm prints for a refused version or tarball, naming the rule.

    `pkg@1.2.3 is quarantined until 2026-12-10T14:00Z by policy min_age=3d`,
    `pkg@1.2.3 is blocked by rule 7 (MAL-2025-1234: malicious code)`.
    """
    subject = f"{name}@{version}"
    if reason.kind == "quarantine" and reason.until is not None:
        return f"{subject} is quarantined until {_until(reason.until)} by {reason.rule}"
    verb = "blocked" if reason.kind == "block" else "hidden"
    message = f"{subject} is {verb} by {reason.rule}"
    if reason.detail:
        message += f" ({reason.detail})"
    if reason.until is not None:
        message += f" until {_until(reason.until)}"
    return message


def fingerprint(verdict: Verdict) -> str:
    """A short stable digest of what the policy let through: versions (and stand-ins) and dist-tags.

    Fold it into the ETag: it changes when a version leaves quarantine or a
    rule changes what is shown, with no change upstream.
    """
    versions = verdict.doc.get("versions")
    tags = verdict.doc.get("dist-tags")
    payload = {
        "versions": sorted(
            [version, verdict.replaced[version].by if version in verdict.replaced else ""]
            for version in (versions if isinstance(versions, dict) else {})
        ),
        "tags": sorted([str(tag), str(target)] for tag, target in (tags.items() if isinstance(tags, dict) else ())),
    }
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()[:16]
