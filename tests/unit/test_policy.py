"""The mirror policy over real-shaped packuments: quarantine, freeze, block, allow, replace, dist-tags.

Every case injects `now`; time passing is a later `now`. Packuments are built
here as an uplink serves them (a manifest with dist per version, `time` with
created/modified, dist-tags with prerelease lines).
"""

from __future__ import annotations

import base64
import copy
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from registry.domain.packument import parse_version
from registry.domain.policy import fingerprint, refusal, visible
from registry.domain.policy_ranges import parse_range
from registry.domain.policy_rules import (
    Policy,
    PolicyConfig,
    parse_policy_section,
    parse_rule,
)

BASE = "http://registry.test"
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    """A time as the npm registry writes it."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ago(days: float = 0, hours: float = 0) -> str:
    return stamp(NOW - timedelta(days=days, hours=hours))


def mirrored(
    name: str,
    published: dict[str, str | None],
    tags: dict[str, str] | None = None,
    *,
    deprecated: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A packument as an uplink serves it; a version published at None has no `time` entry."""
    file_base = name.rsplit("/", 1)[-1]
    versions: dict[str, Any] = {}
    for version in published:
        data = f"{name}@{version}".encode()
        versions[version] = {
            "_id": f"{name}@{version}",
            "name": name,
            "version": version,
            "description": f"{name} at {version}",
            "dependencies": {"dep": f"^{version.split('.')[0]}.0.0"},
            "dist": {
                "tarball": f"{BASE}/{name}/-/{file_base}-{version}.tgz",
                "shasum": hashlib.sha1(data).hexdigest(),
                "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
            },
        }
        if deprecated and version in deprecated:
            versions[version]["deprecated"] = deprecated[version]
    stamps = sorted(t for t in published.values() if t is not None)
    time = {"created": stamps[0], "modified": stamps[-1]} if stamps else {}
    time.update({version: t for version, t in published.items() if t is not None})
    releases = [v for v in published if "-" not in v]
    latest = max(releases, key=lambda v: parse_version(v)) if releases else None
    return {
        "_id": name,
        "name": name,
        "description": f"{name} package",
        "dist-tags": tags if tags is not None else ({"latest": latest} if latest else {}),
        "versions": versions,
        "time": time,
        "readme": f"# {name}",
        "maintainers": [{"name": "alice", "email": "alice@example.com"}],
    }


def policy(**section: Any) -> Policy:
    return parse_policy_section({"**": section}).policy_for("any-name")


def shown(doc: dict[str, Any], pol: Policy, now: datetime = NOW, *, local: bool = False) -> list[str]:
    return list(visible(doc, pol, now, local=local).doc["versions"])


def rule(kind: str = "block", **raw: Any) -> Any:
    return parse_rule(f"runtime.{kind}", raw, kind=kind, rule_id="7", source="runtime")  # type: ignore[arg-type]


# A package with a release line, a prerelease line, and young versions at the top.
LODASH_LIKE = {
    "1.0.0": ago(days=400),
    "1.1.0": ago(days=300),
    "2.0.0-rc.1": ago(days=200),
    "2.0.0": ago(days=100),
    "2.1.0-beta.1": ago(days=20),
    "2.1.0-beta.2": ago(days=1),
    "2.1.0": ago(hours=5),
    "2.1.1": ago(hours=2),
}
TAGS = {"latest": "2.1.1", "next": "2.1.0-beta.2", "rc": "2.0.0-rc.1"}


def test_min_age_hides_young_versions_and_latest_falls_back_to_the_newest_old_enough_release() -> None:
    result = visible(mirrored("lodash-like", LODASH_LIKE, TAGS), policy(min_age="3d"), NOW, local=False)

    assert list(result.doc["versions"]) == ["1.0.0", "1.1.0", "2.0.0-rc.1", "2.0.0", "2.1.0-beta.1"]
    assert result.doc["dist-tags"]["latest"] == "2.0.0"  # not the newer prerelease 2.1.0-beta.1
    assert set(result.hidden) == {"2.1.0-beta.2", "2.1.0", "2.1.1"}
    assert result.hidden["2.1.1"].until == NOW - timedelta(hours=2) + timedelta(days=3)


def test_a_prerelease_tag_falls_back_within_its_line() -> None:
    tags = {**TAGS, "canary": "2.1.0-canary-abc123-20260110"}
    doc = mirrored("lodash-like", {**LODASH_LIKE, "2.0.0-canary-ff00-20250101": ago(days=90),
                                   "2.1.0-canary-abc123-20260110": ago(hours=1)}, tags)

    tags_out = visible(doc, policy(min_age="3d"), NOW, local=False).doc["dist-tags"]

    assert tags_out["next"] == "2.1.0-beta.1"
    assert tags_out["canary"] == "2.0.0-canary-ff00-20250101"
    assert tags_out["rc"] == "2.0.0-rc.1"  # its version is still there: untouched


def test_a_tag_with_no_allowed_candidate_disappears() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=30), "2.0.0-alpha.1": ago(hours=1)},
                   {"latest": "1.0.0", "alpha": "2.0.0-alpha.1"})

    assert visible(doc, policy(min_age="1d"), NOW, local=False).doc["dist-tags"] == {"latest": "1.0.0"}


def test_latest_never_moves_above_the_version_it_pointed_at() -> None:
    # The maintainers keep 3.0.0 on `next`; quarantining 2.5.0 must not make 3.0.0 latest.
    doc = mirrored("pkg", {"2.4.0": ago(days=60), "3.0.0": ago(days=40), "2.5.0": ago(hours=3)},
                   {"latest": "2.5.0", "next": "3.0.0"})

    assert visible(doc, policy(min_age="1d"), NOW, local=False).doc["dist-tags"] == {"latest": "2.4.0", "next": "3.0.0"}


def test_latest_on_a_prerelease_only_package_stays_in_its_line() -> None:
    doc = mirrored("pkg", {"1.0.0-rc.1": ago(days=9), "1.0.0-rc.2": ago(hours=1)}, {"latest": "1.0.0-rc.2"})

    assert visible(doc, policy(min_age="1d"), NOW, local=False).doc["dist-tags"] == {"latest": "1.0.0-rc.1"}


def test_quarantine_ends_by_itself_as_time_passes() -> None:
    doc = mirrored("lodash-like", LODASH_LIKE, TAGS)
    pol = policy(min_age="3d")
    before = visible(doc, pol, NOW, local=False)
    first_end = NOW - timedelta(days=1) + timedelta(days=3)  # 2.1.0-beta.2's quarantine ends first

    assert before.next_change == first_end
    just_before = visible(doc, pol, first_end - timedelta(milliseconds=1), local=False)
    assert fingerprint(just_before) == fingerprint(before)
    at_end = visible(doc, pol, first_end, local=False)
    assert "2.1.0-beta.2" in at_end.doc["versions"]
    assert at_end.doc["dist-tags"]["next"] == "2.1.0-beta.2"
    assert fingerprint(at_end) != fingerprint(before)
    assert at_end.next_change == NOW - timedelta(hours=5) + timedelta(days=3)
    later = visible(doc, pol, NOW + timedelta(days=3), local=False)
    assert later.doc["versions"].keys() == doc["versions"].keys()
    assert later.next_change is None and not later.changed


def test_freeze_before_hides_what_was_published_after_it_and_keeps_the_moment_itself() -> None:
    doc = mirrored("pkg", {"1.0.0": "2024-12-01T00:00:00.000Z", "1.1.0": "2025-01-01T00:00:00.000Z",
                           "1.2.0": "2025-01-01T00:00:00.001Z"})

    result = visible(doc, policy(freeze_before="2025-01-01"), NOW, local=False)

    assert list(result.doc["versions"]) == ["1.0.0", "1.1.0"]
    assert result.doc["dist-tags"] == {"latest": "1.1.0"}
    assert result.next_change is None
    assert refusal("pkg", "1.2.0", result.hidden["1.2.0"]) == (
        "pkg@1.2.0 is hidden by policy freeze_before=2025-01-01T00:00Z (published 2025-01-01T00:00:00Z)"
    )


@pytest.mark.parametrize(("unknown_age", "expected"), [("hide", ["1.0.0"]), ("allow", ["1.0.0", "1.1.0"])])
def test_a_version_without_a_time_follows_unknown_age(unknown_age: str, expected: list[str]) -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=30), "1.1.0": None})

    assert shown(doc, policy(min_age="3d", unknown_age=unknown_age)) == expected


def test_unknown_age_matters_only_when_ages_do() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=30), "1.1.0": None})
    doc["time"]["1.0.0"] = "not a time"

    assert shown(doc, policy(block=[{"package": "other"}])) == ["1.0.0", "1.1.0"]
    assert shown(doc, policy(min_age="1h")) == []


def test_block_by_name_scope_range_and_glob() -> None:
    doc = mirrored("event-stream", {"3.3.4": ago(days=900), "3.3.5": ago(days=800), "3.3.6": ago(days=700),
                                    "4.0.0-beta.1": ago(days=600), "4.0.0": ago(days=500)})
    scoped = mirrored("@evil/thing", {"1.0.0": ago(days=50)})

    assert shown(doc, policy(block=[{"package": "event-stream"}])) == []
    assert shown(doc, policy(block=[{"package": "event-*"}])) == []
    assert shown(doc, policy(block=[{"package": "event-stream", "versions": "3.3.6"}])) == [
        "3.3.4", "3.3.5", "4.0.0-beta.1", "4.0.0"]
    # A range covers its prereleases, as Verdaccio's includePrerelease does.
    assert shown(doc, policy(block=[{"package": "event-stream", "versions": ">=3.3.6"}])) == ["3.3.4", "3.3.5"]
    assert shown(scoped, policy(block=[{"scope": "@evil"}])) == []
    assert shown(mirrored("@evilish/x", {"1.0.0": ago(days=50)}), policy(block=[{"scope": "@evil"}])) == ["1.0.0"]


def test_a_blocked_versions_refusal_names_the_rule_and_its_reason() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=90), "1.0.1": ago(days=80)})
    pol = Policy(rules=(rule(package="pkg", versions="1.0.1", reason="MAL-2025-1234: malicious code"),))

    result = visible(doc, pol, NOW, local=False)

    assert refusal("pkg", "1.0.1", result.hidden["1.0.1"]) == (
        "pkg@1.0.1 is blocked by rule 7 (MAL-2025-1234: malicious code)")
    assert result.withheld_tarballs == {"pkg-1.0.1.tgz": ("1.0.1", result.hidden["1.0.1"])}


def test_the_quarantine_refusal_names_the_minute_it_has_surely_cleared() -> None:
    doc = mirrored("pkg", {"1.0.0": "2026-12-07T13:59:30.500Z"})
    result = visible(doc, policy(min_age="3d"), datetime(2026, 12, 8, tzinfo=UTC), local=False)

    assert refusal("pkg", "1.0.0", result.hidden["1.0.0"]) == (
        "pkg@1.0.0 is quarantined until 2026-12-10T14:00Z by policy min_age=3d")


def test_allow_beats_block_and_quarantine_for_the_versions_it_covers() -> None:
    doc = mirrored("semver", {"7.7.2": ago(days=90), "7.7.3": ago(hours=1), "7.7.4": ago(hours=1)})
    pol = policy(min_age="3d", block=[{"package": "semver"}], allow=[{"package": "semver", "versions": "7.7.3"}])

    result = visible(doc, pol, NOW, local=False)

    assert list(result.doc["versions"]) == ["7.7.3"]
    assert result.doc["dist-tags"] == {"latest": "7.7.3"}
    assert result.hidden["7.7.4"].kind == "block"  # the lasting reason is the one reported


def test_an_expired_rule_is_ignored_and_its_expiry_is_a_change() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=90), "1.1.0": ago(days=80)})
    expires = NOW + timedelta(days=2)
    pol = policy(block=[{"package": "pkg", "versions": "1.1.0", "expires": stamp(expires)}])

    before = visible(doc, pol, NOW, local=False)
    assert list(before.doc["versions"]) == ["1.0.0"]
    assert before.next_change == expires
    assert refusal("pkg", "1.1.0", before.hidden["1.1.0"]).endswith(f"until {expires:%Y-%m-%dT%H:%M}Z")
    after = visible(doc, pol, expires, local=False)
    assert list(after.doc["versions"]) == ["1.0.0", "1.1.0"] and after.next_change is None


def test_an_expiring_allow_puts_the_version_back_into_quarantine() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=90), "1.1.0": ago(hours=1)})
    pol = policy(min_age="3d", allow=[{"package": "pkg", "expires": stamp(NOW + timedelta(hours=1))}])

    assert shown(doc, pol) == ["1.0.0", "1.1.0"]
    assert visible(doc, pol, NOW, local=False).next_change == NOW + timedelta(hours=1)
    assert shown(doc, pol, NOW + timedelta(hours=1)) == ["1.0.0"]


def test_replace_serves_the_newest_older_allowed_version_under_the_blocked_number() -> None:
    doc = mirrored("stolen", {"1.0.0": ago(days=400), "2.0.1": ago(days=300), "3.0.0": ago(days=200)})
    original = copy.deepcopy(doc)
    pol = policy(block=[{"package": "stolen", "versions": ">2.0.1", "strategy": "replace"}])

    result = visible(doc, pol, NOW, local=False)

    served = result.doc["versions"]["3.0.0"]
    assert served["version"] == "3.0.0"
    assert served["dist"] == original["versions"]["2.0.1"]["dist"]
    assert served["dependencies"] == original["versions"]["2.0.1"]["dependencies"]
    assert result.replaced["3.0.0"].by == "2.0.1"
    assert result.doc["dist-tags"] == {"latest": "3.0.0"}  # still there, as Verdaccio keeps it
    assert result.doc["time"]["3.0.0"] == original["time"]["3.0.0"]
    assert result.withheld_tarballs.keys() == {"stolen-3.0.0.tgz"}
    assert not result.hidden


def test_replace_picks_the_stand_in_by_semver_not_by_publish_order() -> None:
    # 1.9.9 is a backport published after 3.0.0; Verdaccio would serve it for 3.0.0.
    doc = mirrored("pkg", {"1.0.0": ago(days=400), "2.0.0": ago(days=300), "3.0.0": ago(days=200),
                           "1.9.9": ago(days=100), "3.1.0-beta.1": ago(days=90), "3.1.0": ago(days=50)})
    pol = policy(block=[{"package": "pkg", "versions": "3.x", "strategy": "replace"}])

    result = visible(doc, pol, NOW, local=False)

    assert {v: r.by for v, r in result.replaced.items()} == {"3.0.0": "2.0.0", "3.1.0-beta.1": "2.0.0", "3.1.0": "2.0.0"}


def test_replace_without_an_older_allowed_version_hides_and_a_young_one_stays_hidden() -> None:
    doc = mirrored("pkg", {"1.0.0-rc.1": ago(days=400), "1.0.0": ago(days=300), "1.1.0": ago(hours=1)})
    pol = policy(min_age="3d", block=[{"package": "pkg", "strategy": "replace"}])

    result = visible(doc, pol, NOW, local=False)

    assert result.doc["versions"] == {} and result.doc["dist-tags"] == {}
    assert set(result.hidden) == {"1.0.0-rc.1", "1.0.0", "1.1.0"}
    assert result.next_change == NOW - timedelta(hours=1) + timedelta(days=3)


def test_a_document_published_here_is_exempt_unless_the_policy_applies_to_all() -> None:
    doc = mirrored("@acme/ui", {"1.0.0": ago(days=30), "1.1.0": ago(hours=1)})

    assert shown(doc, policy(min_age="3d"), local=True) == ["1.0.0", "1.1.0"]
    assert shown(doc, policy(min_age="3d", applies_to="all"), local=True) == ["1.0.0"]
    assert shown(doc, policy(min_age="3d"), local=False) == ["1.0.0"]


def test_time_keeps_created_and_modified_and_loses_hidden_versions() -> None:
    doc = mirrored("lodash-like", LODASH_LIKE, TAGS)

    time = visible(doc, policy(min_age="3d"), NOW, local=False).doc["time"]

    assert time["created"] == doc["time"]["created"] and time["modified"] == doc["time"]["modified"]
    assert set(time) == {"created", "modified", "1.0.0", "1.1.0", "2.0.0-rc.1", "2.0.0", "2.1.0-beta.1"}


def test_exclude_deprecated_hides_deprecated_versions() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=90), "1.1.0": ago(days=80)}, deprecated={"1.1.0": "use 2.x"})

    result = visible(doc, policy(exclude_deprecated=True), NOW, local=False)

    assert list(result.doc["versions"]) == ["1.0.0"]
    assert refusal("pkg", "1.1.0", result.hidden["1.1.0"]) == "pkg@1.1.0 is hidden by policy exclude_deprecated (use 2.x)"


def test_the_input_document_is_never_changed() -> None:
    doc = mirrored("lodash-like", LODASH_LIKE, TAGS)
    doc["_distfiles"] = {"x.tgz": {"url": "x.tgz"}}
    original = copy.deepcopy(doc)
    pol = policy(min_age="3d", block=[{"package": "lodash-like", "versions": "1.1.0", "strategy": "replace"}])

    result = visible(doc, pol, NOW, local=False)

    assert doc == original
    assert result.doc is not doc and result.changed


def test_a_policy_that_does_nothing_returns_the_document_as_it_is() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=1)})

    result = visible(doc, Policy(), NOW, local=False)

    assert result.doc == doc and not result.changed and result.next_change is None
    assert visible({}, policy(min_age="1d"), NOW, local=False).doc == {}


def test_the_fingerprint_follows_the_visible_set_only() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=90), "1.1.0": ago(hours=1)})
    pol = policy(min_age="1d")
    changed_text = copy.deepcopy(doc)
    changed_text["readme"] = "# new readme"

    assert fingerprint(visible(doc, pol, NOW, local=False)) == fingerprint(visible(changed_text, pol, NOW, local=False))
    assert fingerprint(visible(doc, pol, NOW, local=False)) != fingerprint(visible(doc, Policy(), NOW, local=False))


def test_sections_match_like_packages_first_match_wins() -> None:
    config = parse_policy_section({"@acme/*": {"applies_to": "all"}, "**": {"min_age": "36h"}})

    assert config.policy_for("@acme/ui").min_age is None
    assert config.policy_for("lodash").min_age == 36 * 3600
    assert PolicyConfig().policy_for("x") == Policy()


def test_run_time_rules_join_the_configured_policy() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=90), "1.0.1": ago(days=80)})
    pol = policy(min_age="1d").with_rules([rule(package="pkg", versions="1.0.1")])

    assert shown(doc, pol) == ["1.0.0"]


@pytest.mark.parametrize(
    ("version", "npm_range", "expected"),
    [
        ("3.1.0-rc.1", ">=3.0.0", True),
        ("3.0.0-rc.1", ">=3.0.0", False),
        ("3.0.1-beta", "3.0.1", False),
        ("2.0.0-beta", "^1.0.0", False),
        ("1.9.9-beta", "^1.0.0", True),
        ("1.2.0-beta", "1.2.x", True),
        ("2.0.0", "1.0.0 - 2.0.0", True),
        ("2.0.1", "1.0.0 - 2.0.0", False),
        ("0.0.4", "^0.0.3", False),
        ("1.3.0", "~1.2.3", False),
        ("2.5.0", "1.2.3 || 2.x", True),
        ("1.0.0", ">= 1.0.0 < 2", True),
        ("v1.0.1", "=1.0.1", True),
        ("not-a-version", "*", False),
    ],
)
def test_ranges_read_as_npm_with_prereleases_included(version: str, npm_range: str, expected: bool) -> None:
    assert parse_range(npm_range).contains(version) is expected
