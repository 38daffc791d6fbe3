"""`GET /-/v1/search`: local packages by name, description and keywords, in npm's shape,
then the uplink's results; each names the version the mirror policy lets through.

The local matches come from the package list's index (registry.domain.package_index):
ranked over the whole list, walked in order with the visitor's access applied until
the page is full; only the page's entries are read.
"""

from __future__ import annotations

from aiohttp import web

from registry.domain.search import (
    local_page,
    page_results,
    parse_query,
    search_time,
    shown_upstream,
)
from registry.http.access import Sight
from registry.http.appkeys import PACKAGES
from registry.http.bodies import query_int
from registry.http.routes_uplink import upstream_search

MAX_SIZE = 250


async def search(request: web.Request) -> web.Response:
    text = request.query.get("text", "").strip().lower()
    size = query_int(request, "size", 20, 1, MAX_SIZE, clamp=True)
    offset = query_int(request, "from", 0, 0, 1_000_000, clamp=True)
    words, scope = parse_query(text)
    packages = request.app[PACKAGES]
    wanted = offset + size
    ranking = packages.listing.search(words, scope, Sight(request))
    page = await local_page(packages, ranking, words, offset, wanted)
    objects = page_results(page)
    total = page.total
    if text and wanted > page.total:
        # Local results first, then the uplink's. Names we hold locally win over the
        # uplink's, even when the policy hides all of theirs: the walk passed every one.
        upstream = await upstream_search(request, wanted - page.total)
        local = set(page.walked)
        shown = await shown_upstream(packages, [o for o in upstream if o["package"].get("name") not in local])
        objects += shown[max(0, offset - page.total):wanted - page.total]
        total += len(shown)
    return web.json_response({"objects": objects, "total": total, "time": search_time()})


def setup(app: web.Application) -> None:
    app.router.add_get("/-/v1/search", search)
