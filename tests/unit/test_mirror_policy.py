"""MirrorPolicy: config plus run-time rules, verdicts cached until a rule change or a quarantine end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry.config import parse_config
from registry.domain.errors import BadRequest, Forbidden
from registry.domain.mirror_policy import MirrorPolicy, PolicyEvents, RuleIndex
from registry.domain.policy_rules import PolicyConfig, parse_policy_section, parse_rule
from registry.domain.policy_store import (
    add_rule,
    current_stamp,
    list_rule_items,
    load_rules,
    remove_rule,
    rule_item,
)
from storage.base import ConfigError
from storage.sqlite import SqliteRegistryDatabase
from tests.unit.test_policy import NOW, mirrored
from uplinks.documents import MIRROR_MARK, Current

YOUNG = (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
OLD = (NOW - timedelta(days=400)).isoformat().replace("+00:00", "Z")


def current(doc: dict[str, Any], token: str = "t1") -> Current:
    """A document as storage holds it after the mirror fetched it from an uplink."""
    return Current({**doc, MIRROR_MARK: {"uplink": "up"}}, token, 1000)


def local(doc: dict[str, Any]) -> Current:
    """A document published here."""
    return Current(doc, "t1", 1000)


class Recording(PolicyEvents):
    def __init__(self) -> None:
        self.refusals: list[str] = []
        self.totals: list[dict[str, int]] = []

    def refused(self, kind: str) -> None:
        self.refusals.append(kind)

    def hidden(self, totals: dict[str, int]) -> None:
        self.totals.append(totals)


def engine(section: dict[str, Any] | None, clock: list[datetime], events: PolicyEvents | None = None) -> MirrorPolicy:
    config = parse_policy_section(section) if section is not None else PolicyConfig()
    return MirrorPolicy(config, clock=lambda: clock[0], events=events)


async def test_without_rules_nothing_is_judged() -> None:
    policy = engine(None, [NOW])
    assert not policy.active
    view = await policy.view("lodash", current(mirrored("lodash", {"1.0.0": YOUNG})))
    assert view.stamp == "" and view.expires is None


async def test_a_verdict_is_cached_until_its_quarantine_ends_then_judged_again() -> None:
    clock = [NOW]
    events = Recording()
    policy = engine({"**": {"min_age": "3d"}}, clock, events)
    doc = current(mirrored("lodash", {"1.0.0": OLD, "1.1.0": YOUNG}))
    view = await policy.view("lodash", doc)
    assert set(view.verdict.doc["versions"]) == {"1.0.0"} and view.stamp
    assert view.expires == NOW - timedelta(hours=1) + timedelta(days=3)
    assert policy.cached_view("lodash", doc) is view
    assert events.totals[-1] == {"quarantine": 1}
    clock[0] = view.expires
    assert policy.cached_view("lodash", doc) is None
    later = await policy.view("lodash", doc)
    assert set(later.verdict.doc["versions"]) == {"1.0.0", "1.1.0"} and later.stamp == ""
    assert events.totals[-1] == {}


async def test_new_run_time_rules_invalidate_every_cached_verdict() -> None:
    policy = engine({"**": {"min_age": "3d"}}, [NOW])
    doc = current(mirrored("chalk", {"5.0.0": OLD, "5.0.1": OLD}))
    first = await policy.view("chalk", doc)
    assert first.stamp == ""
    generation = policy.generation
    block = parse_rule("r", {"package": "chalk", "versions": "5.0.1"}, kind="block", rule_id="r-1", source="runtime")
    policy.set_rules([block])
    assert policy.generation == generation + 1 and policy.cached_view("chalk", doc) is None
    view = await policy.view("chalk", doc)
    assert set(view.verdict.doc["versions"]) == {"5.0.0"}
    with pytest.raises(Forbidden, match=r"chalk@5.0.1 is blocked by rule r-1"):
        policy.check_tarball("chalk", "chalk-5.0.1.tgz", view, who="alice")
    with pytest.raises(Forbidden):
        policy.check_version("chalk", "5.0.1", view, who=None)
    policy.check_version("chalk", "5.0.0", view, who=None)  # shown: no error


async def test_an_admin_block_holds_a_local_package_that_config_ages_exempt() -> None:
    policy = engine({"**": {"min_age": "3d", "block": [{"package": "app"}]}}, [NOW])
    published = local(mirrored("app", {"1.0.0": YOUNG}))
    assert set((await policy.view("app", published)).verdict.doc["versions"]) == {"1.0.0"}
    policy.set_rules([parse_rule("r", {"package": "app"}, kind="block", rule_id="r-2", source="runtime")])
    assert (await policy.view("app", published)).verdict.doc["versions"] == {}


def test_rule_index_finds_rules_by_name_scope_and_glob() -> None:
    rules = [
        parse_rule("a", {"package": "lodash"}, kind="block", rule_id="a"),
        parse_rule("b", {"scope": "@evil"}, kind="block", rule_id="b"),
        parse_rule("c", {"package": "left-pad-*"}, kind="block", rule_id="c"),
    ]
    index = RuleIndex(rules)
    assert [r.id for r in index.matching("lodash")] == ["a"]
    assert [r.id for r in index.matching("@evil/x")] == ["b"]
    assert [r.id for r in index.matching("left-pad-2")] == ["c"]
    assert index.matching("@good/x") == [] and index.matching("lodash-es") == []


def test_rule_items_are_validated_like_config_rules() -> None:
    item = rule_item({"package": "chalk", "versions": "^5", "expires": "30d"}, kind="block", by="ops", now=NOW)
    assert item["id"].startswith("r-") and item["by"] == "ops" and item["source"] == "runtime"
    assert item["expires"] == (NOW + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    for spec, words in (
        ({"versions": "1"}, "package or a scope"),
        ({"package": "x", "versions": "not a range"}, "semver range"),
        ({"package": "x", "expires": "2001-01-01"}, "past"),
        ({"package": "x", "color": "red"}, "unknown rule field"),
        ({"scope": "acme"}, "scope like @acme"),
    ):
        with pytest.raises(BadRequest, match=words):
            rule_item(spec, kind="block", by="ops", now=NOW)


async def test_rules_round_trip_through_the_database_and_change_the_stamp(tmp_path: Path) -> None:
    db = SqliteRegistryDatabase(tmp_path / "db.sqlite3")
    await db.open()
    try:
        assert await current_stamp(db) == ""
        item = rule_item({"scope": "@evil", "reason": "typosquats"}, kind="block", by="ops", now=datetime.now(UTC))
        await add_rule(db, item, held=0)
        stamp = await current_stamp(db)
        assert stamp
        [rule] = await load_rules(db)
        assert rule.id == item["id"] and rule.target.value == "@evil" and rule.reason == "typosquats"
        policy = MirrorPolicy()
        assert await policy.reload(db) and policy.active
        assert not await policy.reload(db)  # same stamp: nothing to do
        await remove_rule(db, item["id"])
        assert await current_stamp(db) != stamp and await list_rule_items(db) == []
        assert await policy.reload(db) and not policy.active
    finally:
        await db.close()


def test_config_takes_policy_or_verdaccio_filters_but_not_both() -> None:
    config = parse_config({"policy": {"**": {"min_age": "36h"}}})
    assert config.policy.policy_for("x").min_age == 36 * 3600
    verdaccio = parse_config({"filters": {"@verdaccio/package-filter": {"minAgeDays": 2}, "other-filter": {}}})
    assert verdaccio.policy.policy_for("x").min_age == 2 * 86400
    assert parse_config({}).policy.sections == ()
    with pytest.raises(ConfigError) as caught:
        parse_config({"policy": {"**": {}}, "filters": {"@verdaccio/package-filter": {}}})
    assert caught.value.key == "filters.@verdaccio/package-filter"
    with pytest.raises(ConfigError) as caught:
        parse_config({"policy": {"**": {"min_age": "soon"}}})
    assert caught.value.key == "policy.**.min_age"
