"""Requests passed to the uplink that serves public packages: `npm audit`, and
the upstream half of `npm search`."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from registry.domain.errors import BadGateway, NotFoundError
from registry.domain.rules import rule_for
from registry.http.appkeys import CONFIG, MIRROR
from uplinks.base import Uplink, UplinkError

LOG = logging.getLogger(__name__)

AUDIT_PATHS = ("/-/npm/v1/security/advisories/bulk", "/-/npm/v1/security/audits/quick")
PASSED_HEADERS = ("Content-Type", "Content-Encoding", "Accept", "npm-command", "User-Agent")
# An unscoped name no rule would single out: whatever rule catches it is the
# one for public packages.
PUBLIC_PROBE = "tarhold-public-probe"


def public_uplink(request: web.Request) -> Uplink | None:
    """The uplink the rule for public packages proxies to, unless its circuit is open."""
    rule = rule_for(request.app[CONFIG].packages, PUBLIC_PROBE)
    mirror = request.app[MIRROR]
    for name in rule.proxy if rule else ():
        if name in mirror.uplinks and mirror.breakers[name].available():
            return mirror.uplinks[name]
    return None


async def audit(request: web.Request) -> web.Response:
    uplink = public_uplink(request)
    if uplink is None:
        raise NotFoundError("npm audit needs an uplink for public packages; none is configured or reachable")
    body = await request.read()
    headers = {k: request.headers[k] for k in PASSED_HEADERS if k in request.headers}
    try:
        status, data, content_type = await uplink.forward("POST", request.path, body, headers)
    except UplinkError as exc:
        raise BadGateway(f"audit: {exc}") from None
    if status == 404:
        raise NotFoundError(f"uplink {uplink.name} does not support npm audit")
    return web.Response(status=status, body=data, content_type=content_type.split(";")[0])


async def upstream_search(request: web.Request, size: int) -> list[dict[str, Any]]:
    """The uplink's search results, or nothing when it can't search."""
    uplink = public_uplink(request)
    if uplink is None:
        return []
    query = request.rel_url.with_query({**request.query, "from": "0", "size": str(size)}).query_string
    try:
        status, data, _ = await uplink.forward("GET", f"/-/v1/search?{query}", b"", {"Accept": "application/json"})
        if status != 200:
            return []
        objects = orjson.loads(data).get("objects", [])
    except (UplinkError, orjson.JSONDecodeError, AttributeError) as exc:
        LOG.info("uplink search failed: %s", exc)
        return []
    return [o for o in objects if isinstance(o, dict) and isinstance(o.get("package"), dict)]


def setup(app: web.Application) -> None:
    for path in AUDIT_PATHS:
        app.router.add_post(path, audit)
