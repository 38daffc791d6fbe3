"""A search's ranked matches, walked in order until a page is full (package_index.py).

The index hands over groups of equal score; each is put in name order only as far
as a walk needs (a page of a 100,000-package group sorts a few hundred), and the
visitor's access is asked about name by name only where a `packages:` rule's
answer does not hold for every name (`Sight`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from typing import Protocol

# Slots asked about one by one (an org's scope, a token's grants) before a total is
# given; past it the total counts only those the walk asked about (a lower bound).
ASK_AT_ONCE = 2_000
SORT_WHOLE = 2_048  # groups up to this size are sorted at once, larger ones a prefix at a time


class Sight(Protocol):
    """Who is asking, as the index needs it (registry.http.access.Sight)."""

    def rule(self, index: int) -> bool | None:
        """Every name of `packages:` rule `index` (-1: none) outside an org's scope is visible
        (True), none is (False), or each must be asked about (None)."""

    def org_scopes(self) -> Iterable[str]:
        """Scopes whose names must be asked about one by one."""

    def name(self, name: str) -> bool:
        """Whether the visitor may see package `name`."""


class Order:
    """The slots of one group in name order, sorted as far as a walk has needed."""

    def __init__(self, slots: set[int], names: list[str]) -> None:
        self.slots = slots
        self.names = names
        self.sorted: list[int] = []

    def upto(self, count: int) -> list[int]:
        if len(self.sorted) < min(count, len(self.slots)):
            if len(self.slots) <= SORT_WHOLE or count * 4 >= len(self.slots):
                self.sorted = sorted(self.slots, key=self.names.__getitem__)
            else:
                self.sorted = heapq.nsmallest(max(count * 4, 256), self.slots, key=self.names.__getitem__)
        return self.sorted


class Ranking:
    """The visible matches of one search, best first, then by name: `take` walks on."""

    def __init__(self, names: list[str], groups: list[tuple[float, Order]], ask: set[int], sight: Sight,
                 sure: int) -> None:
        self._names = names
        self._sight = sight
        self._ask = ask
        self._answers: dict[int, bool] = {}
        if len(ask) <= ASK_AT_ONCE:
            for slot in ask:
                self._answers[slot] = sight.name(names[slot])
        self._sure = sure
        self._walk = self._visible(groups)
        self.taken = 0
        self.exhausted = False

    @property
    def total(self) -> int:
        """How many match; a lower bound only when many names had to be asked about."""
        if self.exhausted:
            return self.taken
        return self._sure + sum(self._answers.values())

    def take(self, count: int) -> list[tuple[float, str]]:
        """The next `count` visible matches (fewer at the end) as (score, name)."""
        found = list(itertools.islice(self._walk, count))
        self.taken += len(found)
        if len(found) < count:
            self.exhausted = True
        return found

    def _visible(self, groups: list[tuple[float, Order]]) -> Iterator[tuple[float, str]]:
        for value, order in groups:
            done = 0
            while done < len(order.slots):
                slots = order.upto(done + 64)
                if len(slots) <= done:
                    break
                for slot in slots[done:]:
                    done += 1
                    name = self._names[slot]
                    if name and (slot not in self._ask or self._seen(slot, name)):
                        yield value, name

    def _seen(self, slot: int, name: str) -> bool:
        answer = self._answers.get(slot)
        if answer is None:
            answer = self._answers[slot] = self._sight.name(name)
        return answer
