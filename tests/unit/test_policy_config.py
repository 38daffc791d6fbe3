"""The policy's two config forms: what each key means, and one clear error naming a bad key."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from registry.domain.policy_rules import (
    EVERY_PACKAGE,
    format_duration,
    parse_policy_section,
    parse_rule,
    parse_verdaccio_filter,
)
from storage.base import ConfigError


def test_a_full_section_reads_into_the_rule_model() -> None:
    config = parse_policy_section({
        "**": {
            "min_age": "3d",
            "freeze_before": date(2026, 1, 1),
            "unknown_age": "allow",
            "applies_to": "all",
            "strategy": "replace",
            "exclude_deprecated": True,
            "block": [
                {"package": "event-stream", "versions": "3.3.6", "reason": "MAL-2018-1", "strategy": "remove"},
                {"scope": "@evil"},
                {"package": "left-pad-*", "expires": "2026-12-31T12:00Z"},
                {"versions": ">=4.0.0 <4.0.3"},
            ],
            "allow": [{"package": "semver", "versions": "7.7.3", "reason": "reviewed"}],
        }
    })
    pol = config.policy_for("anything")

    assert pol.min_age == 3 * 86400
    assert pol.freeze_before == datetime(2026, 1, 1, tzinfo=UTC)
    assert (pol.unknown_age, pol.applies_to, pol.exclude_deprecated) == ("allow", "all", True)
    first, scope, glob, targetless, allow = pol.rules
    assert (first.id, first.kind, first.strategy, first.reason) == ("policy.**.block[0]", "block", "remove", "MAL-2018-1")
    assert first.target.matches("event-stream") and not first.target.matches("event-stream2")
    assert scope.target.matches("@evil/x") and scope.strategy == "replace"  # the section's default
    assert glob.target.matches("left-pad-io") and glob.expires == datetime(2026, 12, 31, 12, tzinfo=UTC)
    assert targetless.target == EVERY_PACKAGE and targetless.versions is not None
    assert (allow.id, allow.kind, allow.source) == ("policy.**.allow[0]", "allow", "config")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("min_age: 3d", "policy"),
        ({"**": {"min_age": "three days"}}, "policy.**.min_age"),
        ({"**": {"minimum_age": "3d"}}, "policy.**.minimum_age"),
        ({"**": {"freeze_before": "last tuesday"}}, "policy.**.freeze_before"),
        ({"**": {"unknown_age": "maybe"}}, "policy.**.unknown_age"),
        ({"**": {"applies_to": "local"}}, "policy.**.applies_to"),
        ({"**": {"strategy": "block"}}, "policy.**.strategy"),
        ({"**": {"block": {"package": "x"}}}, "policy.**.block"),
        ({"**": {"block": ["x"]}}, "policy.**.block[0]"),
        ({"**": {"block": [{"package": "x", "versions": "not a range"}]}}, "policy.**.block[0].versions"),
        ({"**": {"block": [{"package": "x", "versions": ""}]}}, "policy.**.block[0].versions"),
        ({"**": {"block": [{"scope": "evil"}]}}, "policy.**.block[0].scope"),
        ({"**": {"block": [{"scope": "@evil", "package": "x"}]}}, "policy.**.block[0]"),
        ({"**": {"block": [{"package": "x", "version": "1.0.0"}]}}, "policy.**.block[0].version"),
        ({"**": {"block": [{"package": "x", "expires": "soon"}]}}, "policy.**.block[0].expires"),
        ({"**": {"allow": [{"package": "x", "strategy": "replace"}]}}, "policy.**.allow[0].strategy"),
        ({"**": {"block": [{"package": "x", "reason": "r" * 501}]}}, "policy.**.block[0].reason"),
    ],
)
def test_a_bad_policy_value_names_its_key(raw: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy_section(raw)
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"minAgeDays": -5}, "filters.@verdaccio/package-filter.minAgeDays"),
        ({"minAgeDays": "a week"}, "filters.@verdaccio/package-filter.minAgeDays"),
        ({"dateThreshold": "not-a-date"}, "filters.@verdaccio/package-filter.dateThreshold"),
        ({"minAgeDay": 3}, "filters.@verdaccio/package-filter.minAgeDay"),
        ({"block": [{"scope": "noscope"}]}, "filters.@verdaccio/package-filter.block[0].scope"),
        ({"block": [{}]}, "filters.@verdaccio/package-filter.block[0]"),
        ({"block": [{"package": "x", "versions": ">=1", "strategy": "remove"}]},
         "filters.@verdaccio/package-filter.block[0].strategy"),
        ({"block": [{"scope": "@x", "versions": ">=1"}]}, "filters.@verdaccio/package-filter.block[0].versions"),
    ],
)
def test_a_bad_package_filter_value_names_its_key(raw: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_verdaccio_filter(raw)
    assert caught.value.key == key


def test_package_filter_values_read_as_verdaccio_reads_them() -> None:
    pol = parse_verdaccio_filter({"minAgeDays": "7", "dateThreshold": "2021"}).policy_for("x")
    assert pol.min_age == 7 * 86400
    assert pol.freeze_before == datetime(2021, 1, 1, tzinfo=UTC)
    assert pol.applies_to == "all" and pol.unknown_age == "hide"
    assert parse_verdaccio_filter({"dateThreshold": 1704067200000}).policy_for("x").freeze_before == datetime(
        2024, 1, 1, tzinfo=UTC)
    assert parse_verdaccio_filter({"minAgeDays": 0}).policy_for("x").min_age is None
    assert parse_verdaccio_filter(None).policy_for("x").is_noop


def test_package_filter_package_names_are_names_not_globs() -> None:
    rule = parse_verdaccio_filter({"block": [{"package": "left-pad*"}]}).policy_for("x").rules[0]
    assert rule.target.kind == "name" and not rule.target.matches("left-pad-io")


def test_a_run_time_rule_is_parsed_by_the_same_code() -> None:
    rule = parse_rule("rule 12", {"package": "x", "versions": "1.0.0"}, kind="block", rule_id="12", source="osv")
    assert (rule.id, rule.source, rule.strategy) == ("12", "osv", "remove")


@pytest.mark.parametrize(("seconds", "text"), [(259200, "3d"), (129600, "36h"), (604800, "1w"), (90, "90s"), (0.5, "0.5s")])
def test_durations_print_as_a_config_says_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
