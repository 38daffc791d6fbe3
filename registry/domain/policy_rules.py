"""The mirror policy's rule model and its two config forms.

tarhold's own `policy:` section is a mapping of `packages:`-style glob
patterns (first match wins, the same matcher as `packages:`) to settings:

    policy:
      '@acme/*':              # our own scope: local publishes and mirrored alike
        applies_to: all
      '**':
        min_age: 3d           # a duration: 3d, 36h, 90m; 0 or absent: no quarantine
        freeze_before: 2026-01-01   # hide versions published after this moment
        unknown_age: hide     # a version with no `time` entry: hide (default) | allow
        applies_to: uplinks   # uplinks (default: local publishes exempt) | all
        strategy: remove      # default for this section's block rules: remove | replace
        exclude_deprecated: false
        block:
          - {package: event-stream, versions: '3.3.6', reason: 'MAL-2018-1: backdoor'}
          - {scope: '@evil'}
          - {package: 'left-pad-*', expires: 2026-12-31}   # a glob
          - {versions: '>=4.0.0-0 <4.0.3', strategy: replace} # no target: every package here
        allow:
          - {package: semver, versions: '7.7.3', reason: reviewed, expires: 2026-07-01}

Verdaccio's `filters: {'@verdaccio/package-filter': {...}}` maps onto the
same model (`parse_verdaccio_filter`), so its config works unchanged.

A date (`2026-12-31`) is the start of that day in UTC; a date-time without
an offset is UTC too (Verdaccio would read it in the server's local zone).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

from registry.domain.policy_ranges import RangeError, VersionRange, parse_range
from registry.domain.rules import glob_to_regex
from storage.base import ConfigError
from storage.options import parse_bool, parse_choice, parse_duration

RuleKind = Literal["block", "allow"]
Strategy = Literal["remove", "replace"]
Source = Literal["config", "runtime", "osv"]
UnknownAge = Literal["hide", "allow"]
AppliesTo = Literal["uplinks", "all"]

VERDACCIO_FILTER = "@verdaccio/package-filter"
SECTION_KEYS = {
    "min_age", "freeze_before", "unknown_age", "applies_to", "strategy", "exclude_deprecated", "block", "allow",
}
RULE_KEYS = {"package", "scope", "versions", "reason", "expires", "strategy"}
VERDACCIO_KEYS = {"minAgeDays", "dateThreshold", "excludeDeprecated", "block", "allow"}
_GLOB_CHARS = re.compile(r"[*?{]")
# What JavaScript's `new Date(text)` reads as UTC: `2021`, `2021-06`, `2021-06-01`.
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")
MAX_REASON = 500


@dataclass(frozen=True)
class Target:
    """Which packages a rule covers: one name, a scope (`@acme`), or a glob (`left-pad-*`, `**`)."""

    kind: Literal["name", "scope", "glob"]
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, name: str) -> bool:
        if self.kind == "name":
            return name == self.value
        if self.kind == "scope":
            return name.startswith(self.value + "/")
        return self.regex is not None and self.regex.fullmatch(name) is not None


EVERY_PACKAGE = Target("glob", "**", glob_to_regex("**"))


@dataclass(frozen=True)
class Rule:
    """One block or allow rule. `versions` None covers every version of the matching packages."""

    id: str
    kind: RuleKind
    target: Target
    versions: VersionRange | None = None
    reason: str | None = None
    expires: datetime | None = None
    strategy: Strategy = "remove"
    source: Source = "config"

    def active(self, now: datetime) -> bool:
        """An expired rule is as if it were not there: it expires at `expires`, exactly."""
        return self.expires is None or now < self.expires

    def covers(self, version: str) -> bool:
        return self.versions is None or self.versions.contains(version)


@dataclass(frozen=True)
class Policy:
    """What one package's versions are held to. The default Policy() does nothing."""

    min_age: float | None = None  # seconds
    freeze_before: datetime | None = None
    unknown_age: UnknownAge = "hide"
    applies_to: AppliesTo = "uplinks"
    exclude_deprecated: bool = False
    rules: tuple[Rule, ...] = ()

    @property
    def ages_matter(self) -> bool:
        return self.min_age is not None or self.freeze_before is not None

    @property
    def is_noop(self) -> bool:
        return not (self.ages_matter or self.exclude_deprecated or self.rules)

    def for_local(self) -> Policy:
        """What holds a package published here under `applies_to: uplinks`: an admin's
        run-time rules only (a block naming a package is the emergency brake for a
        hijacked private package too); config rules, ages and advisories exempt it."""
        if self.applies_to == "all":
            return self
        return Policy(rules=tuple(rule for rule in self.rules if rule.source == "runtime"))

    def with_rules(self, rules: Iterable[Rule]) -> Policy:
        """This policy plus run-time rules (admin blocks, an advisory feed), after its own."""
        extra = tuple(rules)
        return replace(self, rules=self.rules + extra) if extra else self


NO_POLICY = Policy()


@dataclass(frozen=True)
class PolicySection:
    pattern: str
    regex: re.Pattern[str]
    policy: Policy


@dataclass(frozen=True)
class PolicyConfig:
    """The configured policy: sections matched against a package name, first match wins."""

    sections: tuple[PolicySection, ...] = ()

    def policy_for(self, name: str) -> Policy:
        """The first section whose pattern matches `name`; NO_POLICY when none does."""
        for section in self.sections:
            if section.regex.fullmatch(name):
                return section.policy
        return NO_POLICY


def format_duration(seconds: float) -> str:
    """259200 -> `3d`, 129600 -> `36h`: the largest unit that divides it, as a config would say it."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_moment(key: str, value: Any) -> datetime:
    """A date or date-time (string or YAML-parsed) as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        partial = _PARTIAL_DATE.match(text)
        try:
            if partial:
                moment = datetime(int(partial.group(1)), int(partial.group(2) or 1), 1)
            else:
                moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ConfigError(key, f"{value!r} is not a date like 2026-01-31 or 2026-01-31T12:00Z") from None
    else:
        raise ConfigError(key, "must be a date like 2026-01-31 or 2026-01-31T12:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, "must be a non-empty string")
    if len(value) > MAX_REASON:
        raise ConfigError(key, f"must be at most {MAX_REASON} characters")
    return value.strip()


def _target(key: str, raw: dict[str, Any], *, globs: bool) -> Target:
    if "package" in raw and "scope" in raw:
        raise ConfigError(key, "give package or scope, not both")
    if "scope" in raw:
        scope = _text(f"{key}.scope", raw["scope"])
        if not scope.startswith("@") or "/" in scope or len(scope) < 2:
            raise ConfigError(f"{key}.scope", f"{scope!r} is not a scope like @acme")
        return Target("scope", scope)
    if "package" in raw:
        name = _text(f"{key}.package", raw["package"])
        if globs and _GLOB_CHARS.search(name):
            return Target("glob", name, glob_to_regex(name))
        return Target("name", name)
    if not globs:
        raise ConfigError(key, "a rule needs a package or a scope")
    return EVERY_PACKAGE


def _range(key: str, value: Any) -> VersionRange:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # `versions: 3` in YAML
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, "must be a semver range like '>=1.2.0 <1.3.0' or '3.3.6'")
    try:
        return parse_range(value)
    except RangeError as exc:
        raise ConfigError(key, f"not a semver range: {exc}") from None


def parse_rule(
    key: str,
    raw: Any,
    *,
    kind: RuleKind,
    rule_id: str | None = None,
    source: Source = "config",
    default_strategy: Strategy = "remove",
) -> Rule:
    """One tarhold rule (`{package|scope, versions, reason, expires, strategy}`); errors name `key`.

    The run-time rules (admin API, CLI, advisory feed) go through this too, so a
    rule means the same wherever it was written.
    """
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a mapping like {package: name, versions: '>=1.0.0'}")
    for option in raw:
        if option not in RULE_KEYS:
            raise ConfigError(f"{key}.{option}", f"unknown rule option (known: {', '.join(sorted(RULE_KEYS))})")
    if kind == "allow" and "strategy" in raw:
        raise ConfigError(f"{key}.strategy", "only a block rule has a strategy")
    strategy = parse_choice(f"{key}.strategy", raw.get("strategy", default_strategy), ("remove", "replace"))
    return Rule(
        id=rule_id or key,
        kind=kind,
        target=_target(key, raw, globs=True),
        versions=_range(f"{key}.versions", raw["versions"]) if "versions" in raw else None,
        reason=_text(f"{key}.reason", raw["reason"]) if raw.get("reason") is not None else None,
        expires=parse_moment(f"{key}.expires", raw["expires"]) if raw.get("expires") is not None else None,
        strategy=strategy,  # type: ignore[arg-type]
        source=source,
    )


def _rule_list(key: str, raw: Any) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(key, "must be a list of rules")
    return raw


def parse_policy_section(raw: Any) -> PolicyConfig:
    """tarhold's `policy:` section (see the module docstring) into a PolicyConfig."""
    if raw is None:
        return PolicyConfig()
    if not isinstance(raw, dict):
        raise ConfigError("policy", "must be a mapping of package patterns to policies, e.g. '**': {min_age: 3d}")
    sections = []
    for pattern, options in raw.items():
        key = f"policy.{pattern}"
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(key, "a pattern must be a non-empty string like '**' or '@acme/*'")
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise ConfigError(key, "must be a mapping with min_age, block, allow...")
        for option in options:
            if option not in SECTION_KEYS:
                known = ", ".join(sorted(SECTION_KEYS))
                raise ConfigError(f"{key}.{option}", f"unknown policy option (known: {known})")
        strategy = parse_choice(f"{key}.strategy", options.get("strategy", "remove"), ("remove", "replace"))
        rules = [
            parse_rule(f"{key}.{kind}[{index}]", item, kind=kind, default_strategy=strategy)  # type: ignore[arg-type]
            for kind in ("block", "allow")
            for index, item in enumerate(_rule_list(f"{key}.{kind}", options.get(kind)))
        ]
        min_age = parse_duration(f"{key}.min_age", options["min_age"]) if options.get("min_age") is not None else 0
        policy = Policy(
            min_age=min_age or None,
            freeze_before=(
                parse_moment(f"{key}.freeze_before", options["freeze_before"])
                if options.get("freeze_before") is not None
                else None
            ),
            unknown_age=parse_choice(  # type: ignore[arg-type]
                f"{key}.unknown_age", options.get("unknown_age", "hide"), ("hide", "allow")
            ),
            applies_to=parse_choice(  # type: ignore[arg-type]
                f"{key}.applies_to", options.get("applies_to", "uplinks"), ("uplinks", "all")
            ),
            exclude_deprecated=parse_bool(f"{key}.exclude_deprecated", options.get("exclude_deprecated", False)),
            rules=tuple(rules),
        )
        sections.append(PolicySection(pattern=pattern, regex=glob_to_regex(pattern), policy=policy))
    return PolicyConfig(sections=tuple(sections))


def parse_verdaccio_filter(raw: Any, *, key: str = f"filters.{VERDACCIO_FILTER}") -> PolicyConfig:
    """Verdaccio's package-filter options, as one policy over every package.

    Where this parser differs from Verdaccio's (each a config Verdaccio
    accepts and then misreads): an unknown option, a `strategy` other than
    block/replace (Verdaccio treats any such word as replace), and `versions`
    on a scope rule (Verdaccio silently blocks the whole scope) are refused
    with the key named. A whole-package rule and a range rule for the same
    package are both kept (Verdaccio refuses one order and drops the range in
    the other; the visible versions are the same). Each rule keeps its own
    strategy (Verdaccio gives the last one to every range of the package).
    """
    if raw is None:
        return PolicyConfig()  # `'@verdaccio/package-filter':` with no options: a pass-through
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a mapping with minAgeDays, dateThreshold, block, allow")
    for option in raw:
        if option not in VERDACCIO_KEYS:
            known = ", ".join(sorted(VERDACCIO_KEYS))
            raise ConfigError(f"{key}.{option}", f"unknown package-filter option (known: {known})")
    rules = [
        _verdaccio_rule(f"{key}.{kind}[{index}]", item, kind)  # type: ignore[arg-type]
        for kind in ("block", "allow")
        for index, item in enumerate(_rule_list(f"{key}.{kind}", raw.get(kind)))
    ]
    policy = Policy(
        min_age=_min_age_days(f"{key}.minAgeDays", raw.get("minAgeDays")),
        freeze_before=_date_threshold(f"{key}.dateThreshold", raw.get("dateThreshold")),
        # Verdaccio throws on a version without `time`, and its filter pipeline then
        # serves the whole manifest unfiltered (blocked versions too); tarhold hides
        # just those versions.
        unknown_age="hide",
        # Verdaccio filters every manifest it serves, local publishes included.
        applies_to="all",
        exclude_deprecated=parse_bool(f"{key}.excludeDeprecated", raw.get("excludeDeprecated", False)),
        rules=tuple(rules),
    )
    return PolicyConfig(sections=(PolicySection("**", glob_to_regex("**"), policy),))


def _verdaccio_rule(key: str, raw: Any, kind: RuleKind) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be {scope: '@x'}, {package: name} or {package: name, versions: range}")
    for option in raw:
        if option not in {"package", "scope", "versions", "strategy"}:
            raise ConfigError(f"{key}.{option}", "unknown package-filter rule option")
    if "scope" in raw and "versions" in raw:
        raise ConfigError(f"{key}.versions", "Verdaccio ignores versions on a scope rule; block the scope, "
                          "or use tarhold's policy: section for a range over a scope")
    strategy = raw.get("strategy", "block")
    if strategy not in ("block", "replace"):
        raise ConfigError(f"{key}.strategy", f"{strategy!r} is not block or replace")
    return Rule(
        id=key,
        kind=kind,
        target=_target(key, raw, globs=False),
        versions=_range(f"{key}.versions", raw["versions"]) if "versions" in raw else None,
        strategy="replace" if strategy == "replace" and kind == "block" else "remove",
    )


def _min_age_days(key: str, value: Any) -> float | None:
    if value is None or value == "" or value == 0:
        return None
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"{value!r} is not a number of days") from None
    if isinstance(value, bool) or math.isnan(days) or days < 0 or math.isinf(days):
        raise ConfigError(key, f"{value!r} is not a number of days")
    return days * 86400 or None


def _date_threshold(key: str, value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # JavaScript's `new Date(number)`: milliseconds since the epoch.
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ConfigError(key, f"{value!r} is not a time in milliseconds since 1970") from None
    return parse_moment(key, value)
