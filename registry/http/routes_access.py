"""`POST /-/package/{name}/access`: what `npm access set mfa=none|publish|automation` sends.

npm's body is `{"publish_requires_tfa": bool, "automation_token_overrides_tfa": bool}`
(libnpmaccess.setMfa); the level it stands for is kept on the package
(package_settings) and `two_factor.otp_needed` applies it to every write.
Only a maintainer may change it, with a one-time password when their own
2FA covers writes. `npm access set status=...` (`{"access": public|restricted}`)
changes who reads a package of an organization's scope (routes_org_access.py);
elsewhere tarhold's config decides (the `packages:` rules), and it is refused, saying so.
tarhold adds `{"publish_requires_stage": true}`: a direct publish is then
refused and versions come in through `npm stage` only.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from registry.domain.access import Action
from registry.domain.errors import BadRequest, NotFoundError
from registry.domain.package_settings import change_settings, mfa_from_body, package_mfa
from registry.domain.publish import check_maintainer
from registry.http.access import require_visible
from registry.http.appkeys import DATABASE, PACKAGES
from registry.http.bodies import read_object
from registry.http.otp import authorize_write
from registry.http.routes_org_access import set_org_visibility
from registry.http.urls import package_after

LOG = logging.getLogger(__name__)
MFA_FIELDS = {"publish_requires_tfa", "automation_token_overrides_tfa"}
# tarhold's extension: `{"publish_requires_stage": true}` makes `npm stage` the only way in.
STAGE_FIELD = "publish_requires_stage"


async def set_access(request: web.Request) -> web.Response:
    name = package_after(request, "/-/package/", ("access",)).name
    body = await read_object(request)
    if "access" in body:
        return await set_org_visibility(request, name, body["access"])
    unknown = set(body) - MFA_FIELDS - {STAGE_FIELD}
    if unknown or not body:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}" if unknown else "nothing to change")
    changes: dict[str, Any] = {}
    if MFA_FIELDS & set(body):
        changes["mfa"] = mfa_from_body(body)
    if STAGE_FIELD in body:
        if not isinstance(body[STAGE_FIELD], bool):
            raise BadRequest(f"{STAGE_FIELD} must be true or false")
        changes["stage_required"] = body[STAGE_FIELD]
    require_visible(request, name)
    current = await request.app[PACKAGES].read_live(name)
    if current is None:
        raise NotFoundError(f"package {name} not found")
    permit = await authorize_write(request, name, Action.PUBLISH)
    user = permit.user
    check_maintainer(current.doc, permit.maintainer)
    settings = await change_settings(request.app[DATABASE], name, changes)
    LOG.warning("%s changed %s on %s", user, changes, name, extra={"user": user, "package": name})
    return web.json_response({
        "ok": True, "mfa": package_mfa(settings), STAGE_FIELD: bool(settings.get("stage_required")),
    })


def setup(app: web.Application) -> None:
    """Before the `/-/package/` catch-all of routes_changes."""
    app.router.add_post("/-/package/{tail:.*}/access", set_access)
