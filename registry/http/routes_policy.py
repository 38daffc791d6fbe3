"""The admin API for the mirror policy's run-time rules: `/-/tarhold/policy`.

- `GET /-/tarhold/policy`: every run-time rule (config rules are in the config);
- `POST /-/tarhold/policy`: `{"kind": "block"|"allow", "package"|"scope", "versions",
  "reason", "expires", "strategy"}` adds a rule, 201 with it;
- `DELETE /-/tarhold/policy/{id}`: removes one.

Admins only, exactly as the user and token admin API (routes_admin.require_admin).
A change applies on this process before the answer, and on every other
process within the policy poll (2 s). Every change is logged with who made it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from registry.domain.errors import BadRequest
from registry.domain.policy_store import (
    RULE_FIELDS,
    add_rule,
    describe,
    list_rule_items,
    remove_rule,
    rule_item,
)
from registry.http.appkeys import DATABASE, PACKAGES
from registry.http.bodies import read_object
from registry.http.routes_admin import PREFIX, json_response, require_admin

LOG = logging.getLogger(__name__)

POLICY_FIELDS = {"kind", *RULE_FIELDS}


async def get_rules(request: web.Request) -> web.Response:
    await require_admin(request)
    rules = await list_rule_items(request.app[DATABASE])
    return json_response({"rules": rules, "total": len(rules)})


async def post_rule(request: web.Request) -> web.Response:
    identity = await require_admin(request)
    body = await read_object(request, allowed=POLICY_FIELDS)
    kind = body.pop("kind", None)
    if kind not in ("block", "allow"):
        raise BadRequest('kind must be "block" or "allow"')
    policy = request.app[PACKAGES].policy
    item = rule_item(body, kind=kind, by=identity.user, now=policy.clock())
    await add_rule(request.app[DATABASE], item, held=len(policy.runtime.rules))
    LOG.warning("policy: %s added %s rule %s: %s", identity.user, kind, item["id"], describe(item),
                extra={"rule": item["id"], "user": identity.user})
    await policy.reload(request.app[DATABASE])
    return json_response(item, 201)


async def delete_rule(request: web.Request) -> web.Response:
    identity = await require_admin(request)
    item = await remove_rule(request.app[DATABASE], request.match_info["id"])
    LOG.warning("policy: %s removed %s rule %s: %s", identity.user, item.get("kind"), item["id"], describe(item),
                extra={"rule": item["id"], "user": identity.user})
    await request.app[PACKAGES].policy.reload(request.app[DATABASE])
    return json_response({"ok": True, "id": item["id"]})


def setup(app: web.Application) -> None:
    router = app.router
    router.add_get(f"{PREFIX}/policy", get_rules)
    router.add_post(f"{PREFIX}/policy", post_rule)
    router.add_delete(f"{PREFIX}/policy/{{id}}", delete_rule)
