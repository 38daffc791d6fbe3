"""`npm publish` over HTTP: `PUT /{name}` with the version and its tarball attached.

The access check (publish rule, token grants) and the dependency-confusion
guard are here; decoding, verifying and storing are registry.domain.publish.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from registry.domain.access import Action, Identity
from registry.domain.errors import Forbidden, RegistryError, ServiceUnavailable
from registry.domain.org_store import adopt_package
from registry.domain.package_settings import package_settings
from registry.domain.packages import MIRROR_MARK, is_mirrored
from registry.domain.publish import publish
from registry.domain.rules import PackageRule
from registry.domain.staging import staging_required
from registry.domain.tarball import Limits
from registry.domain.trust_configs import CREATE_PACKAGE
from registry.domain.users import get_user
from registry.http.access import authorize
from registry.http.appkeys import CONFIG, DATABASE, MIRROR, PACKAGES
from registry.http.org_directory import orgs_of, reload
from registry.http.otp import authorize_write
from registry.http.urls import base_url

LOG = logging.getLogger(__name__)


async def publish_package(request: web.Request, name: str, body: dict[str, Any]) -> web.Response:
    """Publish the one new version `body` carries; 201 when it is stored and visible."""
    # Before the one-time password: a package that takes staged versions only
    # says so without asking for a code first.
    settings = await package_settings(request.app[DATABASE], name)
    if staging_required(authorize(request, name, Action.PUBLISH, permission=CREATE_PACKAGE).rule, settings):
        raise Forbidden(f"{name} must be published through staging: run npm stage publish, then npm stage approve")
    # With its one-time password (none for a trusted-publishing token: its CI job proved itself).
    permit = await authorize_write(request, name, Action.PUBLISH, settings, permission=CREATE_PACKAGE)
    await refuse_shadowing(request, name, permit.rule)
    request_base = base_url(request)
    profile = await get_user(request.app[DATABASE], permit.user)
    public = body.get("access") == "public"
    new = await publish(
        request.app[PACKAGES], name, body, user=permit.user,
        tarball_url=lambda n, f: f"{request_base}/{n}/-/{f}",
        email=(profile or {}).get("email"),
        limits=Limits(max_unpacked=request.app[CONFIG].max_unpacked_size),
        trusted=publisher_of(permit.identity), org_writer=permit.org_writer,
    )
    org = orgs_of(request).org_for(name)
    if org is not None and len(new.get("versions") or {}) == 1 and not org.knows(name):
        # A member created a package of the org's scope: private unless published with
        # --access public (npm's default for scoped packages), and `developers` may write it.
        await adopt_package(request.app[DATABASE], org, name, public=public)
        await reload(request.app)
    request["published"] = True  # counted by the metrics middleware
    return web.json_response({"ok": "created new package", "success": True}, status=201)


def publisher_of(identity: Identity | None) -> dict[str, str] | None:
    """`_npmUser.trustedPublisher` for a version a trusted-publishing token publishes, as the
    public registry records it: the provider and the trust configuration's id."""
    if identity is None or identity.trusted is None:
        return None
    return {"id": identity.trusted.provider, "oidcConfigId": identity.trusted.config}


async def refuse_shadowing(request: web.Request, name: str, rule: PackageRule) -> None:
    """A name an uplink serves may not be published here unless the rule allows it."""
    if not rule.proxy or rule.publish_over_uplink:
        return
    try:
        current = await request.app[MIRROR].packument(name, rule.proxy, request.headers.get("Via", ""))
    except RegistryError as exc:
        if rule.publish_if_uplinks_unreachable:
            LOG.warning("publishing %s without asking the uplinks (unreachable: %s)", name, exc.message)
            return
        # Fail closed: a name published now would hide the upstream package
        # for everyone once the uplink is back (dependency confusion).
        raise ServiceUnavailable(
            f"cannot publish {name} now: the uplinks that would say whether they serve it did not answer"
            f" ({exc.message}); try again later, or set publish_if_uplinks_unreachable: true on its"
            " packages rule for an air-gapped registry"
        ) from None
    if current is not None and is_mirrored(current.doc):
        uplink = current.doc[MIRROR_MARK]["uplink"]
        raise Forbidden(
            f"{name} is served by uplink {uplink}; publishing it here would shadow it"
            " (set publish_over_uplink: true on its packages rule to allow this)"
        )
