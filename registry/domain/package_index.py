"""The package list in memory: what search ranks and the front page orders, compact enough
for 100,000 packages.

Each package is a slot of a few parallel lists: its name (and lowered name), a
haystack (its lowered description, keywords and name), its `packages:` rule,
modified time and whether it was published here. Nothing else: a page of
results fetches its full entries from the database (package_list.py), so the
index stays a few hundred bytes a package.

A search ranks exactly as `search.score` does, but with set algebra instead of
a score per entry: each word splits the slots it matches into the score's tiers
(10 exact name, 4 in the name, 3 a keyword, 1 in the description or inside a
keyword) with one C-speed scan of the haystacks (and of the few it matched);
the tiers of the words combine into groups of equal score. A word's split is
kept until the index changes, so a word searched again costs set algebra only. Who may see what is
decided per `packages:` rule where the name does not matter (`Sight`), and
name by name only where it does (an org's scope, a token's grants), while the
ranked groups are walked in name order until a page is full (package_ranking.py).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from operator import contains
from typing import Any

from registry.domain.orgs import scope_of
from registry.domain.package_ranking import Order, Ranking, Sight

# Ranked queries kept (their groups and name orders), until the index changes.
QUERY_CACHE = 64
QUERY_CACHE_SLOTS = 200_000  # slot references over all kept queries: ~8 MB at most
WORD_CACHE_SLOTS = 300_000  # and over the words' splits kept: ~12 MB at most
RECENT_KEPT = 256
UNCLASSIFIED = -2


def _stamp(value: Any) -> float:
    if not isinstance(value, str) or not value:
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return 0.0


def haystack(name: str, entry: dict[str, Any]) -> str:
    """The lowered description, each keyword ended by a newline, then a tab and the lowered
    name: no search word holds whitespace, so a match never spans two fields, `\\nword\\n` is
    an exact keyword and one scan finds a word wherever it scores."""
    description = str(entry.get("description") or "").lower().replace("\n", " ")
    keywords = "".join(str(k).lower().replace("\n", " ") + "\n" for k in entry.get("keywords") or ())
    return f"{description}\n{keywords}\t{name.lower().replace(chr(10), ' ')}"


def exact_keys(lowered: str) -> list[str]:
    """What a word equals to score 10 on this name: the name, or what follows any `/`."""
    return [lowered] + [lowered[i + 1:] for i, c in enumerate(lowered) if c == "/"]


class PackageIndex:
    """Every package of the list, by slot; `put` and `remove` keep it current."""

    def __init__(self, classify: Callable[[str], int] | None = None) -> None:
        # A slot's `packages:` rule (-1: none); without a classifier every name is asked about.
        self.classify = classify or (lambda name: UNCLASSIFIED)
        self.names: list[str] = []  # "" marks a free slot
        self.lowered: list[str] = []
        self.hay: list[str] = []
        self.rules: list[int] = []
        self.stamps = array("d")
        self.local = bytearray()
        self.slots: dict[str, int] = {}
        self.exact: dict[str, int | set[int]] = {}
        self.scopes: dict[str, set[int]] = {}
        self.rule_counts: Counter[int] = Counter()
        self.free: list[int] = []
        self._words: OrderedDict[str, list[tuple[float, set[int]]]] = OrderedDict()
        self._queries: OrderedDict[tuple[tuple[str, ...], str | None], list[tuple[float, Order]]] = OrderedDict()
        self._recent: list[int] | None = None
        self._recent_complete = False

    def __len__(self) -> int:
        return len(self.slots)

    def __contains__(self, name: object) -> bool:
        return name in self.slots

    # -- changes ------------------------------------------------------------------------

    def put(self, name: str, entry: dict[str, Any]) -> None:
        """Add or replace package `name` with its (clean) package list entry."""
        slot = self.slots.get(name)
        if slot is not None:
            self._unlink(slot)
        elif self.free:
            slot = self.free.pop()
        else:
            slot = len(self.names)
            self.names.append("")
            self.lowered.append("")
            self.hay.append("")
            self.rules.append(-1)
            self.stamps.append(0.0)
            self.local.append(0)
        lowered = name.lower()
        self.names[slot] = name
        self.lowered[slot] = name if lowered == name else lowered
        self.hay[slot] = haystack(name, entry)
        self.rules[slot] = self.classify(name)
        self.stamps[slot] = _stamp(entry.get("modified") or entry.get("date"))
        self.local[slot] = 1 if entry.get("local") else 0
        self.slots[name] = slot
        self._link(slot)
        self._changed(slot)

    def remove(self, name: str) -> None:
        slot = self.slots.pop(name, None)
        if slot is None:
            return
        self._unlink(slot)
        self.names[slot] = self.lowered[slot] = self.hay[slot] = ""
        self.local[slot] = 0
        self.free.append(slot)
        self._changed(slot)

    def _link(self, slot: int) -> None:
        for key in exact_keys(self.lowered[slot]):
            held = self.exact.get(key)
            if held is None:
                self.exact[key] = slot
            elif isinstance(held, int):
                self.exact[key] = {held, slot}
            else:
                held.add(slot)
        scope = scope_of(self.names[slot])
        if scope is not None:
            self.scopes.setdefault(scope, set()).add(slot)
        self.rule_counts[self.rules[slot]] += 1

    def _unlink(self, slot: int) -> None:
        for key in exact_keys(self.lowered[slot]):
            held = self.exact.get(key)
            if held == slot:
                del self.exact[key]
            elif isinstance(held, set):
                held.discard(slot)
                if len(held) == 1:
                    self.exact[key] = held.pop()
        scope = scope_of(self.names[slot])
        if scope is not None and scope in self.scopes:
            self.scopes[scope].discard(slot)
            if not self.scopes[scope]:
                del self.scopes[scope]
        self.rule_counts[self.rules[slot]] -= 1
        if not self.rule_counts[self.rules[slot]]:
            del self.rule_counts[self.rules[slot]]

    def _changed(self, slot: int) -> None:
        self._words.clear()
        self._queries.clear()
        self._recent_changed(slot)

    # -- search -------------------------------------------------------------------------

    def search(self, words: list[str], scope: str | None, sight: Sight) -> Ranking:
        """The matches of `words` (all must match) in `scope` (None: any) that `sight` sees."""
        key = (tuple(words), scope)
        groups = self._queries.get(key)
        if groups is None:
            groups = self._groups(words, scope)
            self._keep(key, groups)
        else:
            self._queries.move_to_end(key)
        everything = [order.slots for _, order in groups]
        hidden, ask = self._hidden(everything, sight)
        if hidden:
            groups = [(value, Order(order.slots - hidden, self.names)) for value, order in groups]
            groups = [(value, order) for value, order in groups if order.slots]
        sure = sum(len(order.slots) for _, order in groups) - len(ask)
        return Ranking(self.names, groups, ask, sight, sure)

    def _keep(self, key: tuple[tuple[str, ...], str | None], groups: list[tuple[float, Order]]) -> None:
        self._queries[key] = groups
        held = 0
        for kept in reversed(self._queries.values()):
            held += sum(len(order.slots) for _, order in kept)
        while self._queries and (len(self._queries) > QUERY_CACHE or held > QUERY_CACHE_SLOTS):
            _, dropped = self._queries.popitem(last=False)
            held -= sum(len(order.slots) for _, order in dropped)

    def _groups(self, words: list[str], scope: str | None) -> list[tuple[float, Order]]:
        within: set[int] | None = None
        if scope is not None:
            within = set(self.scopes.get(scope.lstrip("@"), ()))
        if not words:
            everything = within if within is not None else set(self.slots.values())
            return [(1.0, Order(everything, self.names))] if everything else []
        scores: dict[float, set[int]] = {}
        # A word given twice scores twice: split once, weighed by how often it was given.
        for number, (word, times) in enumerate(Counter(words).items()):
            tiers = [(value * times, slots) for value, slots in self._tiers(word, within)]
            within = set().union(*(slots for _, slots in tiers))
            if number == 0:
                scores = {value: slots for value, slots in tiers if slots}
            else:
                combined: dict[float, set[int]] = {}
                for total, slots in scores.items():
                    for value, tier in tiers:
                        both = slots & tier
                        if both:
                            combined.setdefault(total + value, set()).update(both)
                scores = combined
            if not within:
                return []
        return [(value, Order(slots, self.names)) for value, slots in sorted(scores.items(), reverse=True)]

    def _tiers(self, word: str, within: set[int] | None) -> list[tuple[float, set[int]]]:
        """The slots (of `within`, None: all) `word` matches, split by what it scores on each.

        A word's split over all slots is kept until the index changes (changes are
        publishes: rare beside searches); one asked about a few candidates only is not.
        """
        tiers = self._words.get(word)
        if tiers is not None:
            self._words.move_to_end(word)
        elif within is not None and len(within) * 3 <= len(self.names):
            return self._split(word, within)
        else:
            tiers = self._split(word, None)
            self._words[word] = tiers
            held = sum(len(slots) for kept in self._words.values() for _, slots in kept)
            while len(self._words) > 1 and (len(self._words) > QUERY_CACHE or held > WORD_CACHE_SLOTS):
                _, dropped = self._words.popitem(last=False)
                held -= sum(len(slots) for _, slots in dropped)
        return tiers if within is None else [(value, slots & within) for value, slots in tiers]

    def _split(self, word: str, within: set[int] | None) -> list[tuple[float, set[int]]]:
        hay = self.hay
        found = self._having(hay, word, within)
        held = self.exact.get(word)
        exact = set() if held is None else set(held) if isinstance(held, set) else {held}
        exact &= found
        named = self._having(self.lowered, word, found)
        found -= named
        named -= exact
        keyword = self._having(hay, f"\n{word}\n", found)
        found -= keyword
        return [(10.0, exact), (4.0, named), (3.0, keyword), (1.0, found)]

    @staticmethod
    def _having(texts: list[str], word: str, within: set[int] | None) -> set[int]:
        """The slots (of `within`) whose text holds `word`: many are scanned at C speed, all
        of them, and the answer narrowed; a few are asked one by one."""
        if within is None or len(within) * 4 > len(texts):
            found = set(itertools.compress(range(len(texts)), map(contains, texts, itertools.repeat(word))))
            return found if within is None else found & within
        return {slot for slot in within if word in texts[slot]}

    def _hidden(self, groups: list[set[int]], sight: Sight) -> tuple[set[int], set[int]]:
        """(slots the visitor may not see, slots to ask about one by one) among `groups`."""
        verdicts = {rule: sight.rule(rule) for rule in self.rule_counts}
        hidden: set[int] = set()
        ask: set[int] = set()
        if not all(verdict is True for verdict in verdicts.values()):
            rules = self.rules
            for slots in groups:
                for slot in slots:
                    verdict = verdicts.get(rules[slot], False)
                    if verdict is False:
                        hidden.add(slot)
                    elif verdict is None:
                        ask.add(slot)
        for scope in sight.org_scopes():
            members = self.scopes.get(scope)
            if members:
                for slots in groups:
                    ask |= (slots & members) - hidden
        return hidden, ask

    # -- the front page -----------------------------------------------------------------

    def recent(self, sight: Sight) -> Iterator[str]:
        """Packages published here that `sight` sees, most recently modified first (then by name)."""
        verdicts: dict[int, bool | None] = {}
        org_scopes = set(sight.org_scopes())
        count, done = RECENT_KEPT, 0
        while True:
            order, complete = self._recent_order(count)
            for slot in order[done:]:
                done += 1
                name = self.names[slot]
                if not name:
                    continue
                rule = self.rules[slot]
                if rule not in verdicts:
                    verdicts[rule] = sight.rule(rule)
                verdict = verdicts[rule]
                if verdict is True and scope_of(name) not in org_scopes:
                    yield name
                elif verdict is not False and sight.name(name):
                    yield name
            if complete or done < len(order):
                return
            count = max(count, done) * 8

    def _recent_key(self, slot: int) -> tuple[float, str]:
        return -self.stamps[slot], self.names[slot]

    def _recent_order(self, count: int) -> tuple[list[int], bool]:
        """The first `count` local slots in front page order, and whether they are all of them."""
        if self._recent is None or (len(self._recent) < count and not self._recent_complete):
            local = itertools.compress(range(len(self.local)), self.local)
            top = heapq.nlargest(count, local, key=self.stamps.__getitem__)
            top.sort(key=self._recent_key)
            self._recent, self._recent_complete = top, len(top) < count
        return self._recent, self._recent_complete

    def _recent_changed(self, slot: int) -> None:
        """Keep the front page order a true prefix: drop `slot`, and put it back where it
        now belongs when that is within the prefix (or the prefix holds every local slot)."""
        order = self._recent
        if order is None:
            return
        if slot in order:
            order.remove(slot)
        if not self.local[slot]:
            return
        key = self._recent_key(slot)
        if self._recent_complete or (order and key < self._recent_key(order[-1])):
            order.insert(bisect.bisect_left(order, key, key=self._recent_key), slot)
