"""Search over the package list: words against name, description and keywords, in npm's shape.

Used by `GET /-/v1/search` and the web UI's search and front pages. The
matching and ranking over the whole list is the package index's
(package_index.py, the same ranking as `score`); which packages a visitor may
see at all is the access decision's, applied as the ranked matches are walked. What version a result names is the mirror policy's
(`shown_entries`, `shown_upstream`): the one `GET /{name}` shows as latest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from registry.domain.package_ranking import Ranking
from registry.domain.packages import Packages
from registry.domain.policy_rules import Policy
from registry.domain.summaries import summary_of
from uplinks.documents import Current

# Package documents read at once to judge search results (each a cached read).
READS_AT_ONCE = 16
MAX_WORDS = 8


def parse_query(text: str) -> tuple[list[str], str | None]:
    """(words, scope) of a search text; qualifiers (`author:`, `scope:`) are not words, and
    words past MAX_WORDS are left out (each costs a scan of the whole package list)."""
    lowered = text.strip().lower().split()
    words = [w for w in lowered if ":" not in w][:MAX_WORDS]
    scope = next((w.split(":", 1)[1] for w in lowered if w.startswith("scope:")), None)
    return words, scope


def score(entry: dict[str, Any], words: list[str]) -> float:
    """Exact name first, then name matches, then description and keyword matches."""
    if not words:
        return 1.0
    name = entry["name"].lower()
    description = (entry.get("description") or "").lower()
    keywords = [str(k).lower() for k in entry.get("keywords") or []]
    total = 0.0
    for word in words:
        if name == word or name.endswith("/" + word):
            total += 10
        elif word in name:
            total += 4
        elif word in keywords:
            total += 3
        elif word in description or any(word in k for k in keywords):
            total += 1
        else:
            return 0.0  # every word must match somewhere, as npm's search does
    return total


def ranked(entries: Iterable[dict[str, Any]], words: list[str]) -> list[tuple[float, dict[str, Any]]]:
    """(score, entry) of every matching entry, best first, then by name."""
    hits = [(value, entry) for entry in entries if (value := score(entry, words)) > 0]
    hits.sort(key=lambda hit: (-hit[0], str(hit[1]["name"])))
    return hits


def result(entry: dict[str, Any], value: float) -> dict[str, Any]:
    """One package list entry as an object of npm's search results."""
    name = entry["name"]
    package = {
        "name": name,
        "scope": name[1:].split("/")[0] if name.startswith("@") else "unscoped",
        "version": entry.get("version"),
        "description": entry.get("description") or "",
        "keywords": entry.get("keywords") or [],
        "date": entry.get("date") or entry.get("modified"),
        "links": {"npm": "", **(entry.get("links") or {})},
        "publisher": entry.get("publisher") or {},
        "maintainers": entry.get("maintainers") or [],
    }
    return {
        "package": package,
        "score": {"final": value, "detail": {"quality": 1, "popularity": 1, "maintenance": 1}},
        "searchScore": value,
        "flags": {"unstable": str(entry.get("version") or "").startswith("0.")},
    }


def search_time() -> str:
    """The `time` of a search answer, in the JavaScript Date form npm's registry sends."""
    return datetime.now(timezone.utc).strftime("%a %b %d %Y %H:%M:%S GMT+0000 (UTC)")


# -- the mirror policy ------------------------------------------------------------------
#
# A result names the version `npm install <name>` would get: the policy's, not the one
# stored in the package list (which is the unfiltered latest). Nothing here runs unless
# some policy is configured or an admin added a rule (`MirrorPolicy.active`).


async def shown_entries(packages: Packages, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Package list entries as the mirror policy shows them, in their order.

    An entry whose package the policy may change is rebuilt from the filtered
    packument (its latest version, that version's description, date, links),
    and left out when every version is hidden. A package the policy cannot
    touch (a local one under `applies_to: uplinks` with no admin rule naming
    it) costs no read; the others cost one cached read each.
    """
    policy = packages.policy
    if not policy.active:
        return entries
    gate = asyncio.Semaphore(READS_AT_ONCE)

    async def one(entry: dict[str, Any]) -> dict[str, Any] | None:
        name = entry["name"]
        rules = policy.policy_for(name)
        if rules.is_noop or (entry.get("local") and rules.for_local().is_noop):
            return entry
        async with gate:
            current = await packages.read_live(name, cached=True)
        if current is None:
            return entry  # listed, but no document to judge: as before
        doc = await _shown_doc(packages, name, current)
        if doc is None:
            return None
        return entry if doc is current.doc else summary_of(doc, local=bool(entry.get("local")))

    shown = await asyncio.gather(*(one(entry) for entry in entries))
    return [entry for entry in shown if entry is not None]


@dataclass(frozen=True)
class LocalPage:
    """Part of the visible ranked local matches, with their entries."""

    hits: list[tuple[float, dict[str, Any]]]  # [offset:wanted] of them
    best: float  # the best score of them all: results are normalized to it
    total: int  # how many there are (as the policy shows them)
    walked: list[str]  # the names the walk passed, every one when `total` < `wanted`


async def local_page(packages: Packages, ranking: Ranking, words: list[str], offset: int, wanted: int) -> LocalPage:
    """Matches [offset:wanted] of `ranking`; entries are read for the page only.

    With a mirror policy judging costs a (cached) read per package, so the
    matches are judged in page-sized slices until `wanted` are shown; those
    are ranked again (a hidden latest's description no longer counts), the
    unjudged rest lies beyond this page and only counts towards `total`.
    """
    if not packages.policy.active:
        top = ranking.take(wanted)
        entries = {e["name"]: e for e in await packages.listing.entries([name for _, name in top[offset:]])}
        hits = [(value, entries[name]) for value, name in top[offset:] if name in entries]
        return LocalPage(hits, top[0][0] if top else 1.0, ranking.total, [name for _, name in top])
    shown: list[dict[str, Any]] = []
    walked: list[str] = []
    while len(shown) < wanted:
        chunk = [name for _, name in ranking.take(wanted)]
        if not chunk:
            break
        walked += chunk
        shown += await shown_entries(packages, await packages.listing.entries(chunk))
    hits = ranked(shown, words)
    total = len(hits) + ranking.total - ranking.taken
    return LocalPage(hits[offset:wanted], hits[0][0] if hits else 1.0, total, walked)


def page_results(page: LocalPage) -> list[dict[str, Any]]:
    """A local page's hits as search results, scores normalized to the best match."""
    return [result(entry, round(value / page.best, 4)) for value, entry in page.hits]


async def shown_upstream(packages: Packages, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The uplink's search results as the mirror policy lets them through.

    A package tarhold holds a copy of (in storage, mirrored or local) is judged
    on that copy: its result names the filtered latest version (with that
    version's description and date), and it is left out when every version
    is hidden. For one tarhold has no copy of, the packument is not fetched:
    that would cost an uplink request per result of every search. Its result
    is left out when a block rule covers the whole package (no version range)
    and no allow rule names it, and kept as the uplink sent it otherwise, so
    it may name a version the policy would hide (a quarantined latest), which
    `npm install` then resolves past.
    """
    policy = packages.policy
    if not policy.active:
        return objects
    gate = asyncio.Semaphore(READS_AT_ONCE)
    now = policy.clock()

    async def one(found: dict[str, Any]) -> dict[str, Any] | None:
        name = found["package"].get("name")
        if not isinstance(name, str) or policy.policy_for(name).is_noop:
            return found
        async with gate:
            current = await packages.read_live(name, cached=True)
        if current is None:
            return None if blocks_whole_package(policy.policy_for(name), name, now) else found
        doc = await _shown_doc(packages, name, current)
        if doc is None:
            return None
        if doc is current.doc:
            return found
        entry = summary_of(doc, local=False)
        package = dict(found["package"])
        for key in ("version", "description", "date"):
            if key in package:
                package[key] = entry.get(key) or ("" if key == "description" else None)
        return {**found, "package": package}

    shown = await asyncio.gather(*(one(found) for found in objects))
    return [found for found in shown if found is not None]


def blocks_whole_package(policy: Policy, name: str, now: datetime) -> bool:
    """Whether an active block rule covers every version of `name` and no allow rule names it."""
    rules = [rule for rule in policy.rules if rule.active(now) and rule.target.matches(name)]
    return any(rule.kind == "block" and rule.versions is None for rule in rules) and not any(
        rule.kind == "allow" for rule in rules
    )


async def _shown_doc(packages: Packages, name: str, current: Current) -> dict[str, Any] | None:
    """What clients see of `current` (`current.doc` itself when nothing is hidden); None: no version."""
    view = await packages.view(name, current)
    if not view.stamp:
        return current.doc
    versions = view.verdict.doc.get("versions")
    return view.verdict.doc if isinstance(versions, dict) and versions else None
