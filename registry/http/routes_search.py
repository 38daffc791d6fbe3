"""`GET /-/v1/search`: local packages by name, description and keywords, in npm's shape,
then the uplink's results; each names the version the mirror policy lets through."""

from __future__ import annotations

from aiohttp import web

from registry.domain.search import (
    in_scope,
    judged,
    parse_query,
    ranked,
    results,
    search_time,
    shown_upstream,
)
from registry.domain.summaries import clean_entry
from registry.http.access import may_see
from registry.http.appkeys import DATABASE, PACKAGES
from registry.http.bodies import query_int
from registry.http.routes_uplink import upstream_search

MAX_SIZE = 250


async def search(request: web.Request) -> web.Response:
    text = request.query.get("text", "").strip().lower()
    size = query_int(request, "size", 20, 1, MAX_SIZE, clamp=True)
    offset = query_int(request, "from", 0, 0, 1_000_000, clamp=True)
    words, scope = parse_query(text)
    entries = [
        clean_entry(entry, name) async for name, entry in request.app[DATABASE].query("PACKAGE")
        if may_see(request, name) is not None and in_scope(name, scope)
    ]
    packages = request.app[PACKAGES]
    hits = ranked(entries, words)
    # Names we hold locally win over the uplink's, even when the policy hides all of theirs.
    local = {entry["name"] for _, entry in hits}
    if packages.policy.active:
        hits = await judged(packages, hits, words, offset + size)
    objects = results(hits)
    if text and offset + size > len(objects):
        # Local results first, then the uplink's.
        upstream = await upstream_search(request, offset + size - len(objects))
        objects += await shown_upstream(packages, [o for o in upstream if o["package"].get("name") not in local])
    page = objects[offset:offset + size]
    return web.json_response({"objects": page, "total": len(objects), "time": search_time()})


def setup(app: web.Application) -> None:
    app.router.add_get("/-/v1/search", search)
