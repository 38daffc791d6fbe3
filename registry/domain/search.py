"""Search over the package list: words against name, description and keywords, in npm's shape.

Used by `GET /-/v1/search` and the web UI's search page; which packages a
visitor may see at all is the access decision's, decided before this ranks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any


def parse_query(text: str) -> tuple[list[str], str | None]:
    """(words, scope) of a search text; qualifiers (`author:`, `scope:`) are not words."""
    lowered = text.strip().lower().split()
    words = [w for w in lowered if ":" not in w]
    scope = next((w.split(":", 1)[1] for w in lowered if w.startswith("scope:")), None)
    return words, scope


def in_scope(name: str, scope: str | None) -> bool:
    return scope is None or name.startswith(f"@{scope.lstrip('@')}/")


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


def results(hits: list[tuple[float, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Ranked hits as search results, scores normalized to the best one."""
    top = max((h[0] for h in hits), default=1.0)
    return [result(entry, round(value / top, 4)) for value, entry in hits]


def search_time() -> str:
    """The `time` of a search answer, in the JavaScript Date form npm's registry sends."""
    return datetime.now(timezone.utc).strftime("%a %b %d %Y %H:%M:%S GMT+0000 (UTC)")
