"""OSV advisories into block rule specs: real-shaped records, built here, never fetched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry.domain.osv import (
    MAX_ADVISORY_BYTES,
    MAX_RANGE_TEXT,
    AdvisoryError,
    advisory_of,
    older,
    parse_advisory,
)
from registry.domain.policy_ranges import parse_range
from registry.domain.policy_rules import MAX_REASON, parse_rule


def npm(name: str, *, ranges: list[dict[str, Any]] | None = None, versions: list[str] | None = None,
        ecosystem: str = "npm") -> dict[str, Any]:
    entry: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if ranges is not None:
        entry["ranges"] = ranges
    if versions is not None:
        entry["versions"] = versions
    return entry


def semver_range(*events: dict[str, str], kind: str = "SEMVER") -> dict[str, Any]:
    return {"type": kind, "events": list(events)}


def record(advisory_id: str, *affected: dict[str, Any], summary: str = "a problem", **more: Any) -> dict[str, Any]:
    return {
        "schema_version": "1.5.0", "id": advisory_id, "modified": "2024-03-01T10:00:00Z",
        "published": "2024-02-28T08:00:00Z", "summary": summary, "details": "Long text.",
        "affected": list(affected), **more,
    }


def malicious(name: str) -> dict[str, Any]:
    """As the malicious-packages database writes a whole-package record."""
    return record(
        "MAL-2024-1234",
        {**npm(name, ranges=[semver_range({"introduced": "0"})]),
         "database_specific": {"malicious-packages-origins": [{"source": "ghsa-malware"}]}},
        summary=f"Malicious code in {name} (npm)",
    )


def only_spec(advisory_record: dict[str, Any]) -> dict[str, Any]:
    advisory = advisory_of(advisory_record)
    assert advisory.problems == ()
    assert len(advisory.rules) == 1
    return advisory.rules[0][1]


def test_a_malicious_package_record_blocks_the_whole_package() -> None:
    advisory = parse_advisory(json.dumps(malicious("@evil/stealer")).encode())
    assert (advisory.id, advisory.modified, advisory.withdrawn) == ("MAL-2024-1234", "2024-03-01T10:00:00Z", False)
    assert advisory.rules == ((
        "osv-MAL-2024-1234",
        {"package": "@evil/stealer", "reason": "MAL-2024-1234: Malicious code in @evil/stealer (npm)"},
    ),)
    rule = parse_rule("r", advisory.rules[0][1], kind="block")
    assert rule.versions is None and rule.target.matches("@evil/stealer") and not rule.target.matches("@evil/other")


def test_a_malicious_record_listing_versions_blocks_just_those() -> None:
    spec = only_spec(record("MAL-2024-9", npm("typo-pkg", versions=["1.0.0", "1.0.1", "2.0.0-beta.1"])))
    assert spec["versions"] == "1.0.0 || 1.0.1 || 2.0.0-beta.1"
    versions = parse_range(spec["versions"])
    assert versions.contains("1.0.1") and versions.contains("2.0.0-beta.1") and not versions.contains("1.0.2")


def test_a_fixed_advisory_blocks_the_versions_before_the_fix() -> None:
    ghsa = record("GHSA-jf85-cpcp-j695", npm("lodash", ranges=[
        semver_range({"introduced": "0"}, {"fixed": "4.17.12"}, kind="ECOSYSTEM"),
    ]), summary="Prototype Pollution in lodash")
    spec = only_spec(ghsa)
    assert spec == {"package": "lodash", "versions": "<4.17.12", "reason": "GHSA-jf85-cpcp-j695: Prototype Pollution in lodash"}
    versions = parse_range(spec["versions"])
    assert versions.contains("4.17.11") and versions.contains("4.17.12-rc.1") and not versions.contains("4.17.12")


def test_several_intervals_and_last_affected_join_with_or() -> None:
    spec = only_spec(record("GHSA-aaaa-bbbb-cccc", npm("minimist", ranges=[
        # Out of order on purpose: events are walked in version order.
        semver_range({"fixed": "1.2.6"}, {"introduced": "1.0.0"}, {"introduced": "0"}, {"fixed": "0.2.4"}),
        semver_range({"introduced": "2.0.0"}, {"last_affected": "2.1.3"}),
    ])))
    assert spec["versions"] == "<0.2.4 || >=1.0.0 <1.2.6 || >=2.0.0 <=2.1.3"
    versions = parse_range(spec["versions"])
    assert [v for v in ("0.2.3", "0.2.4", "0.9.9", "1.0.0", "1.2.5", "1.2.6", "2.1.3", "2.1.4") if versions.contains(v)] == [
        "0.2.3", "1.0.0", "1.2.5", "2.1.3",
    ]


def test_an_interval_open_above_blocks_every_later_version() -> None:
    spec = only_spec(record("GHSA-open-open-open", npm("ua-parser-js", ranges=[semver_range({"introduced": "0.7.29"})])))
    assert spec["versions"] == ">=0.7.29"


def test_a_limit_closes_the_range_and_a_git_range_is_ignored() -> None:
    spec = only_spec(record("OSV-2024-1", npm("pkg", ranges=[
        {"type": "GIT", "repo": "http://127.0.0.1:9/pkg.git", "events": [{"introduced": "0"}]},
        semver_range({"introduced": "1.0.0"}, {"limit": "1.5.0"}, {"introduced": "3.0.0"}),
    ])))
    assert spec["versions"] == ">=1.0.0 <1.5.0"


def test_listed_versions_the_ranges_cover_are_not_repeated() -> None:
    spec = only_spec(record("GHSA-list-list-list", npm(
        "node-ipc", ranges=[semver_range({"introduced": "10.1.1"}, {"fixed": "10.1.3"})],
        versions=["10.1.1", "10.1.2", "9.2.2"],
    )))
    assert spec["versions"] == ">=10.1.1 <10.1.3 || 9.2.2"


def test_a_withdrawn_advisory_makes_no_rules() -> None:
    withdrawn = {**malicious("left-pad"), "withdrawn": "2024-03-02T00:00:00Z", "modified": "2024-03-02T00:00:00Z"}
    advisory = advisory_of(withdrawn)
    assert advisory.withdrawn and advisory.rules == () and advisory.modified == "2024-03-02T00:00:00Z"


def test_other_ecosystems_are_ignored_and_several_npm_entries_get_numbered_ids() -> None:
    advisory = advisory_of(record(
        "GHSA-mult-iple-ntry",
        npm("requests", ecosystem="PyPI", ranges=[semver_range({"introduced": "0"})]),
        npm("a-lib", ranges=[semver_range({"introduced": "0"}, {"fixed": "1.0.1"})]),
        npm("b-lib", versions=["2.0.0"]),
    ))
    assert [(rule_id, spec["package"], spec.get("versions")) for rule_id, spec in advisory.rules] == [
        ("osv-GHSA-mult-iple-ntry-1", "a-lib", "<1.0.1"), ("osv-GHSA-mult-iple-ntry-2", "b-lib", "2.0.0"),
    ]
    assert advisory_of(record("PYSEC-2024-1", npm("requests", ecosystem="PyPI", versions=["1.0"]))).rules == ()


def test_the_reason_is_one_line_and_cut_to_fit() -> None:
    spec = only_spec(record("GHSA-long-long-long", npm("x", versions=["1.0.0"]), summary="word\n" * 400))
    assert len(spec["reason"]) == MAX_REASON and spec["reason"].endswith("…") and "\n" not in spec["reason"]
    assert spec["reason"].startswith("GHSA-long-long-long: word word")
    parse_rule("r", spec, kind="block")  # a reason the rule parser takes
    without = only_spec(record("MAL-2024-2", npm("y", versions=["1.0.0"]), summary=""))
    assert without["reason"] == "MAL-2024-2: Long text."


@pytest.mark.parametrize(("entry", "problem"), [
    (npm("*", ranges=[semver_range({"introduced": "0"})]), "not an npm package name"),
    (npm("ok", ranges=[semver_range({"introduced": "0"}, {"fixed": "1.0.0 || *"})]), "not a semver version"),
    (npm("ok", versions=["latest"]), "not a semver version"),
    (npm("ok", ranges=[semver_range({"introduced": "0", "fixed": "1.0.0"})]), "an event is not one of"),
    (npm("ok"), "no SEMVER or ECOSYSTEM range and no versions"),
    (npm("ok", versions=[f"1.0.{n}" for n in range(MAX_RANGE_TEXT // 8)]), "longer than"),
])
def test_an_entry_that_cannot_be_a_rule_is_left_out_and_reported(entry: dict[str, Any], problem: str) -> None:
    advisory = advisory_of(record("GHSA-bad0-bad0-bad0", entry, npm("fine", versions=["1.0.0"])))
    assert [rule_id for rule_id, _ in advisory.rules] == ["osv-GHSA-bad0-bad0-bad0-2"]
    assert len(advisory.problems) == 1 and problem in advisory.problems[0]


@pytest.mark.parametrize(("data", "problem"), [
    (b"{not json", "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    (b"[]", "not a JSON object"),
    (json.dumps({"id": "../../etc", "affected": []}).encode(), "no valid id"),
    (json.dumps({"id": "X" * 200}).encode(), "too long"),
    (b" " * (MAX_ADVISORY_BYTES + 1), "larger than"),
])
def test_what_is_not_an_advisory_raises(data: bytes, problem: str) -> None:
    with pytest.raises(AdvisoryError, match=problem):
        parse_advisory(data)


def test_modified_times_compare_as_moments() -> None:
    assert older("2024-03-01T10:00:00Z", "2024-03-01T10:00:00.5Z")
    assert not older("2024-03-01T10:00:01Z", "2024-03-01T10:00:00.999Z")
    assert not older("garbage", "2024-03-01T10:00:00Z") and not older("", "")
