"""`GET /-/v1/search`: local packages by name, description and keywords, in npm's shape."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from registry.domain.errors import BadRequest
from registry.domain.rules import rule_for
from registry.http.appkeys import CONFIG, DATABASE
from registry.http.auth import may_read_package
from registry.http.routes_uplink import upstream_search

MAX_SIZE = 250


def _int(request: web.Request, key: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{key} must be a whole number") from None
    return max(low, min(high, value))


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


def result(entry: dict[str, Any], value: float) -> dict[str, Any]:
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
        "flags": {"unstable": bool(entry.get("version", "").startswith("0."))},
    }


async def search(request: web.Request) -> web.Response:
    text = request.query.get("text", "").strip().lower()
    size = _int(request, "size", 20, 1, MAX_SIZE)
    offset = _int(request, "from", 0, 0, 1_000_000)
    words = [w for w in text.split() if ":" not in w]  # qualifiers (author:, scope:) aside
    scope = next((w.split(":", 1)[1] for w in text.split() if w.startswith("scope:")), None)
    rules = request.app[CONFIG].packages
    identity = request.get("identity")
    hits: list[tuple[float, dict[str, Any]]] = []
    async for name, entry in request.app[DATABASE].query("PACKAGE"):
        rule = rule_for(rules, name)
        if rule is None or not may_read_package(identity, name, rule.access):
            continue
        if scope and not name.startswith(f"@{scope.lstrip('@')}/"):
            continue
        value = score(entry, words)
        if value > 0:
            hits.append((value, entry))
    hits.sort(key=lambda hit: (-hit[0], hit[1]["name"]))
    top = max((h[0] for h in hits), default=1.0)
    objects = [result(entry, round(value / top, 4)) for value, entry in hits]
    if text and offset + size > len(objects):
        # Local results first, then the uplink's (names we hold locally win).
        local = {o["package"]["name"] for o in objects}
        upstream = await upstream_search(request, offset + size - len(objects))
        objects += [o for o in upstream if o["package"].get("name") not in local]
    page = objects[offset:offset + size]
    stamp = datetime.now(timezone.utc).strftime("%a %b %d %Y %H:%M:%S GMT+0000 (UTC)")
    return web.json_response({"objects": page, "total": len(objects), "time": stamp})


def setup(app: web.Application) -> None:
    app.router.add_get("/-/v1/search", search)
