"""The `packages:` rules: glob patterns, first match wins, as in Verdaccio."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from storage.base import ConfigError, StorageFolder

ALL = "$all"
ANONYMOUS = "$anonymous"
AUTHENTICATED = "$authenticated"
# Older Verdaccio spellings, still found in configs in the field.
ALIASES = {"@all": ALL, "@anonymous": ANONYMOUS, "@authenticated": AUTHENTICATED, "all": ALL}

RULE_KEYS = {
    "access", "publish", "unpublish", "proxy", "storage", "allow_access", "allow_publish",
    "publish_over_uplink", "publish_if_uplinks_unreachable", "publish_staged",
}


@dataclass(frozen=True)
class PackageRule:
    pattern: str
    access: tuple[str, ...]
    publish: tuple[str, ...]
    unpublish: tuple[str, ...]
    proxy: tuple[str, ...]
    storage: str | None
    regex: re.Pattern[str]
    publish_over_uplink: bool = False
    # Air-gapped setups: publish a new name even when no uplink can say
    # whether it serves it (refused with 503 by default: it fails closed).
    publish_if_uplinks_unreachable: bool = False
    # Versions reach clients only through `npm stage publish` and a maintainer's
    # `npm stage approve`; a direct `npm publish` is refused (staging.staging_required).
    publish_staged: bool = False

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name) is not None


DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"pattern": "@*/*", "access": ALL, "publish": AUTHENTICATED},
    {"pattern": "**", "access": ALL, "publish": AUTHENTICATED},
)


def default_packages(proxy: str | None = None) -> dict[str, dict[str, Any]]:
    """The `packages:` section a config without one gets, every rule proxying to `proxy`
    when given (the uplink `tarhold serve` adds when no config names one)."""
    rules: dict[str, dict[str, Any]] = {}
    for rule in DEFAULT_RULES:
        options = {k: v for k, v in rule.items() if k != "pattern"}
        if proxy is not None:
            options["proxy"] = proxy
        rules[rule["pattern"]] = options
    return rules


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """minimatch's subset used in registry configs: `**`, `*`, `?`, `{a,b}`."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            end = pattern.find("}", i)
            if end < 0:
                out.append(re.escape(c))
            else:
                alternatives = pattern[i + 1 : end].split(",")
                out.append("(?:" + "|".join(re.escape(a) for a in alternatives) + ")")
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _principals(key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [w for v in value for w in v.split()]
    else:
        raise ConfigError(key, "must be a space-separated string or a list of names")
    return tuple(ALIASES.get(item, item) for item in items)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, "must be true or false")
    return value


def parse_packages(raw: Any, uplinks: Mapping[str, Any]) -> tuple[PackageRule, ...]:
    if raw is None:
        entries = [(r["pattern"], r) for r in DEFAULT_RULES]
    elif isinstance(raw, dict):
        entries = list(raw.items())
    else:
        raise ConfigError("packages", "must be a mapping of patterns to rules")
    rules = []
    for pattern, options in entries:
        key = f"packages.{pattern}"
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise ConfigError(key, "must be a mapping with access, publish, proxy...")
        for option in options:
            if option not in RULE_KEYS and option != "pattern":
                raise ConfigError(f"{key}.{option}", "unknown package rule option")
        access = _principals(f"{key}.access", options.get("access", options.get("allow_access")))
        publish = _principals(f"{key}.publish", options.get("publish", options.get("allow_publish")))
        unpublish = (
            _principals(f"{key}.unpublish", options["unpublish"]) if "unpublish" in options else publish
        )
        proxy = _principals(f"{key}.proxy", options.get("proxy"))
        for name in proxy:
            if name not in uplinks:
                raise ConfigError(f"{key}.proxy", f"no uplink named {name!r}")
        storage = options.get("storage")
        if storage is not None and (
            not isinstance(storage, str) or ".." in storage.split("/") or storage.startswith("/")
        ):
            raise ConfigError(f"{key}.storage", "must be a relative folder name")
        rules.append(
            PackageRule(
                pattern=str(pattern),
                access=access,
                publish=publish,
                unpublish=unpublish,
                proxy=proxy,
                storage=storage or None,
                regex=glob_to_regex(str(pattern)),
                publish_over_uplink=_flag(f"{key}.publish_over_uplink", options.get("publish_over_uplink", False)),
                publish_if_uplinks_unreachable=_flag(
                    f"{key}.publish_if_uplinks_unreachable", options.get("publish_if_uplinks_unreachable", False)
                ),
                publish_staged=_flag(f"{key}.publish_staged", options.get("publish_staged", False)),
            )
        )
    return tuple(rules)


@lru_cache(maxsize=4096)
def _match_index(rules: tuple[PackageRule, ...], name: str) -> int:
    for index, rule in enumerate(rules):
        if rule.matches(name):
            return index
    return -1


def rule_index(rules: tuple[PackageRule, ...], name: str) -> int:
    """The position of the first rule matching `name` (-1: none), uncached: for the package
    list's index, which asks once per package and would only flush `rule_for`'s cache."""
    for index, rule in enumerate(rules):
        if rule.matches(name):
            return index
    return -1


def rule_for(rules: tuple[PackageRule, ...], name: str) -> PackageRule | None:
    """The first rule whose pattern matches `name`; None when none does."""
    index = _match_index(rules, name)
    return rules[index] if index >= 0 else None


def storage_folder(rules: tuple[PackageRule, ...]) -> StorageFolder:
    """A StorageFolder for the package stores: the matching rule's `storage`."""

    def folder(name: str) -> str:
        rule = rule_for(rules, name)
        return (rule.storage or "") if rule else ""

    return folder
