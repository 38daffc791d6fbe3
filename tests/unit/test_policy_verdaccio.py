"""Verdaccio's package-filter config gives the visible versions Verdaccio documents.

The packages and expectations are those of Verdaccio's own plugin tests
(packages/plugins/package-filter/test/packageFilter.test.ts and its
snapshots) and README examples, rebuilt here as real-shaped packuments and
fed through `parse_verdaccio_filter` as config. Where tarhold deliberately
differs, the test says so in its name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from registry.domain.policy import refusal, visible
from registry.domain.policy_rules import parse_verdaccio_filter
from tests.unit.test_policy import NOW, ago, mirrored

BABEL = mirrored("@babel/test", {"1.0.0": "2020-01-01T00:00:00.000Z", "1.5.0": "2022-01-01T00:00:00.000Z",
                                 "3.0.0": "2024-01-01T00:00:00.000Z"})
TYPES = mirrored("@types/node", {"1.0.0": "2010-01-01T00:00:00.000Z", "2.2.0": "2015-01-01T00:00:00.000Z",
                                 "2.6.3": "2025-01-01T00:00:00.000Z"})
TESTACCIO = mirrored(
    "@testaccio/test",
    {"1.4.2": "2021-05-01T00:00:00.000Z", "1.4.4-beta": "2021-06-01T00:00:00.000Z", "1.7.0": "2022-02-01T00:00:00.000Z",
     "1.7.1-beta": "2022-03-01T00:00:00.000Z", "2.2.1-next": "2023-03-01T00:00:00.000Z"},
    {"latest": "1.7.0", "beta": "1.7.1-beta", "next": "2.2.1-next"},
)
TESTACCIO["_distfiles"] = {
    f"test-{v}.tgz": {"url": m["dist"]["tarball"], "sha": m["dist"]["shasum"]} for v, m in TESTACCIO["versions"].items()
}


def days_since(day: str) -> float:
    """Verdaccio's tests' getDaysSince, at the injected now."""
    return (NOW - datetime.fromisoformat(day).replace(tzinfo=UTC)).total_seconds() / 86400


def apply(config: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    return visible(doc, parse_verdaccio_filter(config).policy_for(doc["name"]), NOW, local=False).doc


ALL_BABEL = ["1.0.0", "1.5.0", "3.0.0"]
ALL_TYPES = ["1.0.0", "2.2.0", "2.6.3"]
SCOPES_BLOCKED = [{"scope": "@babel"}, {"scope": "@types"}]
PACKAGES_BLOCKED = [{"package": "@babel/test"}, {"package": "@types/node"}]
RANGES_BLOCKED = [{"package": "@babel/test", "versions": ">=1.5.0"}, {"package": "@types/node", "versions": ">=2.2.0"}]

CASES: list[tuple[str, dict[str, Any], list[str], str | None, list[str], str | None]] = [
    # (case, config, babel versions, babel latest, types versions, types latest) from the snapshots.
    ("minAgeDays", {"minAgeDays": days_since("2023-01-01")}, ["1.0.0", "1.5.0"], "1.5.0", ["1.0.0", "2.2.0"], "2.2.0"),
    ("dateThreshold", {"dateThreshold": "2023-01-01"}, ["1.0.0", "1.5.0"], "1.5.0", ["1.0.0", "2.2.0"], "2.2.0"),
    ("minAgeDays earlier than dateThreshold", {"minAgeDays": days_since("2023-01-01"), "dateThreshold": "2024-06-01"},
     ["1.0.0", "1.5.0"], "1.5.0", ["1.0.0", "2.2.0"], "2.2.0"),
    ("dateThreshold earlier than minAgeDays", {"minAgeDays": days_since("2024-06-01"), "dateThreshold": "2023-01-01"},
     ["1.0.0", "1.5.0"], "1.5.0", ["1.0.0", "2.2.0"], "2.2.0"),
    ("block scope", {"block": [{"scope": "@babel"}]}, [], None, ALL_TYPES, "2.6.3"),
    ("block package", {"block": [{"package": "@babel/test"}]}, [], None, ALL_TYPES, "2.6.3"),
    ("block versions", {"block": [{"package": "@babel/test", "versions": ">1.0.0"}]},
     ["1.0.0"], "1.0.0", ALL_TYPES, "2.6.3"),
    ("block merged ranges", {"block": [{"package": "@babel/test", "versions": ">2.0.0"},
                                       {"package": "@babel/test", "versions": "<1.3.0"}]},
     ["1.5.0"], "1.5.0", ALL_TYPES, "2.6.3"),
    ("block nothing matching", {"block": [{"package": "@babel/test", "versions": ">10.0.0"}]},
     ALL_BABEL, "3.0.0", ALL_TYPES, "2.6.3"),
    ("minAgeDays, allow scope", {"minAgeDays": days_since("2021-01-01"), "allow": [{"scope": "@babel"}]},
     ALL_BABEL, "3.0.0", ["1.0.0", "2.2.0"], "2.2.0"),
    ("minAgeDays, allow package", {"minAgeDays": days_since("2021-01-01"), "allow": [{"package": "@babel/test"}]},
     ALL_BABEL, "3.0.0", ["1.0.0", "2.2.0"], "2.2.0"),
    ("minAgeDays, allow version", {"minAgeDays": days_since("2021-01-01"),
                                   "allow": [{"package": "@babel/test", "versions": "3.0.0"}]},
     ["1.0.0", "3.0.0"], "3.0.0", ["1.0.0", "2.2.0"], "2.2.0"),
    ("minAgeDays, allow several", {"minAgeDays": days_since("2021-01-01"),
                                   "allow": [{"package": "@babel/test", "versions": "3.0.0"},
                                             {"package": "@types/node", "versions": ">2.5.0"}]},
     ["1.0.0", "3.0.0"], "3.0.0", ALL_TYPES, "2.6.3"),
    ("dateThreshold, allow scope", {"dateThreshold": "2021", "allow": [{"scope": "@babel"}]},
     ALL_BABEL, "3.0.0", ["1.0.0", "2.2.0"], "2.2.0"),
    ("dateThreshold, allow version", {"dateThreshold": "2021", "allow": [{"package": "@babel/test", "versions": "3.0.0"}]},
     ["1.0.0", "3.0.0"], "3.0.0", ["1.0.0", "2.2.0"], "2.2.0"),
    ("block scope, allow scope", {"block": SCOPES_BLOCKED, "allow": [{"scope": "@babel"}]}, ALL_BABEL, "3.0.0", [], None),
    ("block scope, allow package", {"block": SCOPES_BLOCKED, "allow": [{"package": "@babel/test"}]},
     ALL_BABEL, "3.0.0", [], None),
    ("block scope, allow version", {"block": SCOPES_BLOCKED, "allow": [{"package": "@babel/test", "versions": "3.0.0"}]},
     ["3.0.0"], "3.0.0", [], None),
    ("block package, allow scope", {"block": PACKAGES_BLOCKED, "allow": [{"scope": "@babel"}]},
     ALL_BABEL, "3.0.0", [], None),
    ("block package, allow version", {"block": PACKAGES_BLOCKED,
                                      "allow": [{"package": "@babel/test", "versions": "3.0.0"}]},
     ["3.0.0"], "3.0.0", [], None),
    ("block range, allow scope", {"block": RANGES_BLOCKED, "allow": [{"scope": "@babel"}]},
     ALL_BABEL, "3.0.0", ["1.0.0"], "1.0.0"),
    ("block range, allow version", {"block": RANGES_BLOCKED, "allow": [{"package": "@babel/test", "versions": "3.0.0"}]},
     ["1.0.0", "3.0.0"], "3.0.0", ["1.0.0"], "1.0.0"),
]


@pytest.mark.parametrize(
    ("case", "config", "babel", "babel_latest", "types", "types_latest"), CASES, ids=[c[0] for c in CASES]
)
def test_verdaccio_plugin_tests_give_the_same_visible_versions(
    case: str,
    config: dict[str, Any],
    babel: list[str],
    babel_latest: str | None,
    types: list[str],
    types_latest: str | None,
) -> None:
    for doc, versions, latest in ((BABEL, babel, babel_latest), (TYPES, types, types_latest)):
        result = apply(config, doc)
        assert list(result["versions"]) == versions
        assert result["dist-tags"] == ({"latest": latest} if latest else {})


def test_replace_serves_the_older_manifest_under_the_blocked_numbers() -> None:
    config = {"block": [{"package": "@babel/test", "versions": ">1.0.0", "strategy": "replace"}]}

    result = apply(config, BABEL)

    assert list(result["versions"]) == ALL_BABEL
    for version in ("1.5.0", "3.0.0"):
        assert result["versions"][version] == {**BABEL["versions"]["1.0.0"], "version": version}
    assert result["dist-tags"] == {"latest": "3.0.0"}
    assert result["time"] == BABEL["time"]
    assert apply(config, TYPES) == TYPES


@pytest.mark.parametrize(("allow", "babel_replaced"), [
    ([{"scope": "@babel"}], {}),
    ([{"package": "@babel/test"}], {}),
    ([{"package": "@babel/test", "versions": "3.0.0"}], {"1.5.0": "1.0.0"}),
])
def test_replace_with_allow_rules(allow: list[dict[str, str]], babel_replaced: dict[str, str]) -> None:
    config = parse_verdaccio_filter({
        "block": [{"package": "@babel/test", "versions": ">1.0.0", "strategy": "replace"},
                  {"package": "@types/node", "versions": ">1.0.0", "strategy": "replace"}],
        "allow": allow,
    })
    babel = visible(BABEL, config.policy_for("@babel/test"), NOW, local=False)
    types = visible(TYPES, config.policy_for("@types/node"), NOW, local=False)

    assert {v: r.by for v, r in babel.replaced.items()} == babel_replaced
    assert {v: r.by for v, r in types.replaced.items()} == {"2.2.0": "1.0.0", "2.6.3": "1.0.0"}


def test_latest_goes_to_the_latest_release_not_an_untagged_prerelease_and_distfiles_are_cleaned() -> None:
    result = apply({"block": [{"package": "@testaccio/test", "versions": "1.7.0"}]}, TESTACCIO)

    assert list(result["versions"]) == ["1.4.2", "1.4.4-beta", "1.7.1-beta", "2.2.1-next"]
    assert result["dist-tags"] == {"latest": "1.4.2", "beta": "1.7.1-beta", "next": "2.2.1-next"}
    assert set(result["_distfiles"]) == {
        "test-1.4.2.tgz", "test-1.4.4-beta.tgz", "test-1.7.1-beta.tgz", "test-2.2.1-next.tgz"}


def test_an_empty_document_does_not_break_the_filter() -> None:
    assert apply({"block": [{"package": "some-package", "versions": "7.7.7"}]}, {"name": "x"}) == {"name": "x"}


def test_readme_example_allow_with_min_age() -> None:
    config = {"minAgeDays": 30, "allow": [{"scope": "@my-company-scope"}, {"package": "@coolauthor/not-stolen"},
                                          {"package": "semver", "versions": "7.7.3"}]}
    semver_doc = mirrored("semver", {"7.7.2": ago(days=90), "7.7.3": ago(days=2), "7.7.4": ago(days=1)})

    assert list(apply(config, semver_doc)["versions"]) == ["7.7.2", "7.7.3"]
    assert list(apply(config, mirrored("@my-company-scope/x", {"1.0.0": ago(days=1)}))["versions"]) == ["1.0.0"]
    assert list(apply(config, mirrored("@coolauthor/not-stolen", {"1.0.0": ago(days=1)}))["versions"]) == ["1.0.0"]
    assert list(apply(config, mirrored("other", {"1.0.0": ago(days=1)}))["versions"]) == []


def test_readme_full_example() -> None:
    config = {
        "minAgeDays": 7,
        "dateThreshold": "2025-01-01",
        "block": [{"scope": "@malicious"}, {"package": "typosquat-pkg"},
                  {"package": "compromised-lib", "versions": ">=3.0.0"},
                  {"package": "legacy-lib", "versions": ">=2.0.0", "strategy": "replace"}],
        "allow": [{"scope": "@my-org"}, {"package": "compromised-lib", "versions": "3.0.1"}],
    }
    old = "2024-06-01T00:00:00.000Z"
    compromised = mirrored("compromised-lib", {"2.9.0": old, "3.0.0": old, "3.0.1": old, "3.1.0": old})
    legacy = mirrored("legacy-lib", {"1.9.0": old, "2.0.0": old, "2.1.0": old})

    assert list(apply(config, compromised)["versions"]) == ["2.9.0", "3.0.1"]
    assert apply(config, compromised)["dist-tags"] == {"latest": "3.0.1"}
    assert apply(config, legacy)["versions"]["2.1.0"]["dist"] == legacy["versions"]["1.9.0"]["dist"]
    assert apply(config, mirrored("@malicious/x", {"1.0.0": old}))["versions"] == {}
    assert apply(config, mirrored("typosquat-pkg", {"1.0.0": old}))["versions"] == {}
    # dateThreshold 2025-01-01 is the earlier cutoff: a version from March 2025 is hidden, however old.
    lib = mirrored("lib", {"1.0.0": old, "1.1.0": "2025-03-01T00:00:00.000Z"})
    assert list(apply(config, lib)["versions"]) == ["1.0.0"]
    assert list(apply(config, mirrored("@my-org/lib", {"1.0.0": ago(hours=1)}))["versions"]) == ["1.0.0"]


def test_a_version_without_time_is_hidden_where_verdaccio_serves_the_whole_manifest_unfiltered() -> None:
    # Verdaccio's filter throws here and its pipeline serves the document as it came, blocks and all.
    doc = mirrored("pkg", {"1.0.0": ago(days=90), "1.0.1": None, "1.0.2": ago(days=80)})
    config = parse_verdaccio_filter({"minAgeDays": 7, "block": [{"package": "pkg", "versions": "1.0.2"}]})

    result = visible(doc, config.policy_for("pkg"), NOW, local=False)

    assert list(result.doc["versions"]) == ["1.0.0"]
    assert refusal("pkg", "1.0.1", result.hidden["1.0.1"]) == (
        "pkg@1.0.1 is hidden by policy unknown_age=hide (its publish time is unknown)")


def test_local_publishes_are_filtered_too_as_verdaccio_does() -> None:
    doc = mirrored("@mine/pkg", {"1.0.0": ago(days=30), "1.1.0": ago(hours=1)})
    config = parse_verdaccio_filter({"minAgeDays": 3})

    assert list(visible(doc, config.policy_for("@mine/pkg"), NOW, local=True).doc["versions"]) == ["1.0.0"]


def test_exclude_deprecated_as_verdaccio() -> None:
    doc = mirrored("pkg", {"1.0.0": ago(days=90), "1.1.0": ago(days=80)}, deprecated={"1.1.0": "broken"})

    assert list(apply({"excludeDeprecated": True}, doc)["versions"]) == ["1.0.0"]
    assert list(apply({"excludeDeprecated": True, "allow": [{"package": "pkg"}]}, doc)["versions"]) == ["1.0.0", "1.1.0"]
