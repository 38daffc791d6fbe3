"""The package list's index: the same ranking as `search.ranked`, visibility applied on the
walk, and the front page order, kept right through every change."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from registry.domain.package_index import UNCLASSIFIED, PackageIndex
from registry.domain.package_ranking import ASK_AT_ONCE
from registry.domain.search import MAX_WORDS, parse_query, ranked
from registry.domain.summaries import clean_entry

WORDS = ["ab", "abc", "b", "cd", "x", "a-b", "zz", "widget", "wid", "ui", "@s"]


class Everyone:
    """Sees every package of every rule; asks about no scope."""

    def __init__(self, rules: dict[int, bool | None] | None = None, scopes: Iterable[str] = (),
                 names: set[str] | None = None) -> None:
        self.rules = rules or {}
        self.scopes = list(scopes)
        self.names = names
        self.asked: list[str] = []

    def rule(self, index: int) -> bool | None:
        return self.rules.get(index, None if index == UNCLASSIFIED else True)

    def org_scopes(self) -> Iterable[str]:
        return self.scopes

    def name(self, name: str) -> bool:
        self.asked.append(name)
        return self.names is None or name in self.names


def random_entry(draw: random.Random, name: str) -> dict[str, Any]:
    def text() -> str:
        return "".join(draw.choice("abcdx-/ UIW\n") for _ in range(draw.randrange(0, 12)))

    keywords = [draw.choice(WORDS + [text()]) for _ in range(draw.randrange(0, 4))]
    return clean_entry({
        "description": text() + draw.choice(["", " widget", " Wid"]), "keywords": keywords,
        "local": draw.random() < 0.7, "modified": f"2026-01-0{draw.randrange(1, 9)}T00:00:00.000Z",
    }, name)


def random_name(draw: random.Random) -> str:
    base = "".join(draw.choice("abcdxz-") for _ in range(draw.randrange(1, 6)))
    return draw.choice(["", "@s/", "@ab/", "@S/"]) + draw.choice(["", "Widget", "ui"]) + base


def walk(index: PackageIndex, words: list[str], scope: str | None = None,
         sight: Everyone | None = None) -> list[tuple[float, str]]:
    return index.search(words, scope, sight or Everyone()).take(10_000)


def test_the_index_ranks_exactly_as_search_ranks_entries() -> None:
    draw = random.Random(7)
    index = PackageIndex(lambda name: 0)
    entries: dict[str, dict[str, Any]] = {}
    for round_ in range(6):
        for _ in range(120):
            name = random_name(draw)
            if name in entries and draw.random() < 0.3:
                index.remove(name)
                del entries[name]
            else:
                entries[name] = random_entry(draw, name)
                index.put(name, entries[name])
        for _ in range(40):
            words = draw.choices(WORDS, k=draw.randrange(1, 4))  # a word given twice scores twice
            expected = [(value, entry["name"]) for value, entry in ranked(entries.values(), words)]
            assert walk(index, words) == expected, (round_, words)
        assert len(index) == len(entries)


def test_a_query_with_no_words_lists_everything_by_name_and_a_scope_narrows_it() -> None:
    index = PackageIndex()
    for name in ["b", "@s/widget", "a", "@t/widget", "@s/a"]:
        index.put(name, clean_entry({}, name))
    assert [name for _, name in walk(index, [])] == ["@s/a", "@s/widget", "@t/widget", "a", "b"]
    assert [name for _, name in walk(index, [], "s")] == ["@s/a", "@s/widget"]
    assert [name for _, name in walk(index, ["widget"], "@t")] == ["@t/widget"]
    assert walk(index, ["widget"], "nobody") == []


def test_a_page_is_walked_in_order_and_the_total_counts_every_match() -> None:
    index = PackageIndex(lambda name: 0)
    for number in range(5000):
        index.put(f"pkg-{number:04d}", clean_entry({"keywords": ["bench"]}, f"pkg-{number:04d}"))
    ranking = index.search(["bench"], None, Everyone())
    assert ranking.total == 5000
    assert [name for _, name in ranking.take(3)] == ["pkg-0000", "pkg-0001", "pkg-0002"]
    assert [name for _, name in ranking.take(2)] == ["pkg-0003", "pkg-0004"]
    rest = ranking.take(10_000)
    assert len(rest) == 4995 and rest[-1][1] == "pkg-4999" and ranking.total == 5000


def test_rules_hide_or_ask_and_org_scopes_are_asked_name_by_name() -> None:
    rules = {"@org/": 0, "@priv/": 1, "@asked/": 2}
    index = PackageIndex(lambda name: next((v for k, v in rules.items() if name.startswith(k)), 3))
    for name in ["@org/a", "@org/b", "@priv/a", "@asked/a", "@asked/b", "plain"]:
        index.put(name, clean_entry({"description": "thing"}, name))
    sight = Everyone(rules={1: False, 2: None}, scopes=["org"], names={"@org/b", "@asked/a", "plain"})
    ranking = index.search(["thing"], None, sight)
    assert [name for _, name in ranking.take(100)] == ["@asked/a", "@org/b", "plain"]
    assert ranking.total == 3
    assert sorted(sight.asked) == ["@asked/a", "@asked/b", "@org/a", "@org/b"]  # never "plain" nor "@priv/a"


def test_past_the_asking_budget_the_walk_asks_as_it_goes() -> None:
    index = PackageIndex()  # unclassified: every name is asked about
    for number in range(ASK_AT_ONCE + 500):
        index.put(f"p{number:05d}", clean_entry({"keywords": ["k"]}, f"p{number:05d}"))
    sight = Everyone(names={f"p{n:05d}" for n in range(0, ASK_AT_ONCE + 500, 2)})
    ranking = index.search(["k"], None, sight)
    assert [name for _, name in ranking.take(3)] == ["p00000", "p00002", "p00004"]
    assert len(sight.asked) <= 10
    assert ranking.total <= (ASK_AT_ONCE + 500) // 2  # a lower bound until walked
    ranking.take(100_000)
    assert ranking.total == (ASK_AT_ONCE + 500) // 2


def test_a_change_is_searched_at_once_and_a_removed_name_frees_its_slot() -> None:
    index = PackageIndex()
    index.put("left", clean_entry({"description": "old words"}, "left"))
    assert walk(index, ["old"]) == [(1.0, "left")]
    index.put("left", clean_entry({"description": "new words"}, "left"))
    assert walk(index, ["old"]) == [] and walk(index, ["new"]) == [(1.0, "left")]
    index.remove("left")
    assert walk(index, ["new"]) == [] and "left" not in index and len(index) == 0
    index.put("right", clean_entry({"keywords": ["new"]}, "right"))
    assert walk(index, ["new"]) == [(3.0, "right")] and len(index.names) == 1


def test_the_front_page_order_stays_true_through_changes() -> None:
    draw = random.Random(3)
    index = PackageIndex()
    entries: dict[str, dict[str, Any]] = {}
    for step in range(3000):
        name = f"p{draw.randrange(600)}"
        if name in entries and draw.random() < 0.2:
            index.remove(name)
            del entries[name]
        else:
            entries[name] = clean_entry({
                "local": draw.random() < 0.8, "modified": f"2026-01-01T00:{draw.randrange(60):02d}:00.000Z",
            }, name)
            index.put(name, entries[name])
        if step % 150 == 0:
            by_name = sorted((e for e in entries.values() if e["local"]), key=lambda e: e["name"])
            expected = [e["name"] for e in sorted(by_name, key=lambda e: e["modified"], reverse=True)]
            assert list(index.recent(Everyone())) == expected


def test_the_front_page_leaves_out_what_the_visitor_may_not_see() -> None:
    index = PackageIndex(lambda name: 0 if name.startswith("@org/") else 1)
    for minute, name in enumerate(["a", "@org/x", "b", "@org/y"]):
        index.put(name, clean_entry({"local": True, "modified": f"2026-01-01T00:0{minute}:00.000Z"}, name))
    sight = Everyone(rules={1: False}, scopes=["org"], names={"@org/y"})
    assert list(index.recent(sight)) == ["@org/y"]


def test_a_search_counts_its_first_eight_words_only() -> None:
    # Each word costs a scan of the whole list: a long text must not cost hundreds.
    words, scope = parse_query(" ".join(f"w{n}" for n in range(500)) + " scope:acme")
    assert words == [f"w{n}" for n in range(MAX_WORDS)] and MAX_WORDS == 8 and scope == "acme"
