"""Trusted publishing: `npm trust …` and the exchange `npm publish` does by itself in CI.

- `GET|POST /-/package/{name}/trust`, `DELETE /-/package/{name}/trust/{id}`
  (npm's trust.yaml): a maintainer lists, adds or revokes the CI jobs that
  may publish the package; with a one-time password when their 2FA is on;
  never with a `--bypass-2fa` token, never with an exchanged token.
- `POST /-/npm/v1/oidc/token/exchange/package/{name}` (oidc.yaml): the
  bearer is the CI job's id token. It is verified (registry.domain.oidc,
  keys from registry.http.oidc_keys), matched against the package's trust
  configurations, and traded for a short-lived token that can publish this
  package only (registry.domain.trusted_tokens). Every refusal is logged
  with the check that failed and answered in npm's error shape,
  `{"message": "OIDC token exchange error - ..."}`; the npm CLI then goes on
  without a token and its publish fails with "need auth".
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from registry.domain.access import Action, Identity, decide
from registry.domain.errors import BadRequest, Forbidden, NotFoundError
from registry.domain.grants import parse_grants
from registry.domain.oidc import TokenRefused, key_ids, peek, verify
from registry.domain.publish import check_maintainer, local_doc, maintainer_names
from registry.domain.trust_config import Issuer
from registry.domain.trust_configs import (
    CREATE_PACKAGE,
    MAX_CONFIGS,
    TrustConfig,
    add_configs,
    matches,
    parse_config,
    remove_config,
    trust_configs,
)
from registry.domain.trusted_tokens import issue
from registry.http.access import require_visible, rule_of
from registry.http.appkeys import CONFIG, DATABASE, PACKAGES
from registry.http.auth import require_user
from registry.http.bodies import read_json
from registry.http.oidc_keys import ISSUER_KEYS, issuer_keys_ctx
from registry.http.org_directory import orgs_of
from registry.http.otp import require_otp
from registry.http.urls import base_url, package_after

LOG = logging.getLogger(__name__)

TRUST = "/-/package/"
EXCHANGE = "/-/npm/v1/oidc/token/exchange/package/"
BYPASS_REFUSED = "Granular access tokens that bypass two-factor authentication may not perform this action."


async def _maintainer(request: web.Request, name: str) -> Identity:
    """Who manages the package's trust: a maintainer, with their one-time password if 2FA is on."""
    identity = require_user(request)  # refuses exchanged tokens too
    if identity.bypass_2fa:
        raise Forbidden(BYPASS_REFUSED)
    require_visible(request, name)
    doc = await local_doc(request.app[PACKAGES], name)
    if doc is None or not maintainer_names(doc):
        raise NotFoundError("Package not found")
    orgs = orgs_of(request)
    verdict = decide(rule_of(request, name), identity, name, Action.PUBLISH, orgs=orgs)
    if not verdict.allowed:
        raise Forbidden("Insufficient permissions to access trusted publisher configurations for this package")
    check_maintainer(doc, None if orgs.writer(identity.user, name) else identity.user)
    await require_otp(request, identity, purpose="trust")
    return identity


async def list_trust(request: web.Request) -> web.Response:
    name = package_after(request, TRUST, ("trust",)).name
    await _maintainer(request, name)
    return web.json_response([c.public() for c in await trust_configs(request.app[DATABASE], name)])


async def add_trust(request: web.Request) -> web.Response:
    name = package_after(request, TRUST, ("trust",)).name
    body = await read_json(request, invalid="body must be a JSON array of trusted publisher configurations")
    items = body if isinstance(body, list) else [body]
    if not 0 < len(items) <= MAX_CONFIGS:
        raise BadRequest(f"give 1 to {MAX_CONFIGS} trusted publisher configurations")
    identity = await _maintainer(request, name)
    settings = request.app[CONFIG].trusted_publishing
    new = [parse_config(item, settings, user=identity.user) for item in items]
    created = await add_configs(request.app[DATABASE], name, new)
    for config in created:
        LOG.warning(
            "%s added trusted publisher %s (%s %s) to %s", identity.user, config.id, config.type,
            config.claims, name, extra={"user": identity.user, "package": name},
        )
    return web.json_response([c.public() for c in created])


async def revoke_trust(request: web.Request) -> web.Response:
    parsed = package_after(request, TRUST)
    if len(parsed.rest) != 2 or parsed.rest[0] != "trust":
        raise NotFoundError("not found")
    identity = await _maintainer(request, parsed.name)
    await remove_config(request.app[DATABASE], parsed.name, parsed.rest[1])
    LOG.warning(
        "%s revoked trusted publisher %s of %s", identity.user, parsed.rest[1], parsed.name,
        extra={"user": identity.user, "package": parsed.name},
    )
    return web.Response(status=204)


def _refused(name: str, status: int, why: str, detail: str) -> web.Response:
    LOG.warning("OIDC token exchange for %s refused: %s", name, detail, extra={"package": name})
    message = f"OIDC token exchange error - {why}: {detail}"
    return web.json_response({"message": message, "error": message}, status=status)


def _bearer(request: web.Request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise TokenRefused("no id token: send it as Authorization: Bearer <id token>")
    return value.strip()


async def verified_claims(request: web.Request, token: str) -> tuple[Issuer, dict[str, Any]]:
    """The issuer and the verified claims of a CI job's id token; TokenRefused otherwise."""
    settings = request.app[CONFIG].trusted_publishing
    header, unverified = peek(token)
    issuer = settings.issuer(unverified["iss"])
    if issuer is None:
        raise TokenRefused(f"issuer {unverified['iss'][:200]!r} is not a configured trusted publishing issuer")
    keys = request.app[ISSUER_KEYS]
    jwks = await keys.jwks(issuer)
    if header.get("kid") is not None and str(header.get("kid")) not in key_ids(jwks):
        jwks = await keys.jwks(issuer, refresh=True)  # the issuer may have rotated its keys
    audiences = issuer.audience or (f"npm:{urlsplit(base_url(request)).hostname}",)
    claims = verify(token, jwks, issuer=issuer.issuer, audiences=audiences, leeway=settings.leeway)
    return issuer, claims


async def _publisher_may_publish(request: web.Request, name: str, config: TrustConfig) -> bool:
    """Whether the maintainer behind `config` could still publish `name` (the token acts as them)."""
    doc = await local_doc(request.app[PACKAGES], name)
    orgs = orgs_of(request)
    if doc is None or (config.created_by not in maintainer_names(doc) and not orgs.writer(config.created_by, name)):
        return False
    acting = Identity(user=config.created_by, grants=parse_grants([f"pkg:read+write={name}"]))
    return decide(rule_of(request, name), acting, name, Action.PUBLISH, orgs=orgs).allowed


async def exchange(request: web.Request) -> web.Response:
    name = package_after(request, EXCHANGE, ()).name
    try:
        issuer, claims = await verified_claims(request, _bearer(request))
    except TokenRefused as exc:
        return _refused(name, 401, "unauthorized", str(exc))
    configs = [c for c in await trust_configs(request.app[DATABASE], name) if matches(c, issuer, claims)]
    if not configs:
        return _refused(
            name, 403, "forbidden",
            f"no trusted publisher configuration of {name} matches this {issuer.name} job"
            f" (sub {str(claims.get('sub'))[:200]!r})",
        )
    config = next((c for c in configs if CREATE_PACKAGE in c.permissions), configs[0])
    if not await _publisher_may_publish(request, name, config):
        return _refused(
            name, 403, "forbidden",
            f"{config.created_by}, who made trust configuration {config.id}, may no longer publish {name};"
            " a maintainer must configure trust again",
        )
    ttl = request.app[CONFIG].trusted_publishing.token_ttl
    exchanged = await issue(request.app[DATABASE], name, config, issuer, claims, ttl=ttl)
    LOG.warning(
        "OIDC token exchange for %s: token %s (trust configuration %s, issuer %s, sub %r) until %s",
        name, exchanged.key, config.id, issuer.name, claims.get("sub"), exchanged.expires,
        extra={"package": name, "user": config.created_by},
    )
    expires = datetime.fromtimestamp(exchanged.expires, timezone.utc).isoformat(timespec="milliseconds")
    return web.json_response(
        {"token_type": "oidc", "token": exchanged.token, "created": exchanged.created,
         "expires": expires.replace("+00:00", "Z")},
        status=201,
    )


def setup(app: web.Application) -> None:
    """Before the `/-/package/` catch-all of routes_changes."""
    app.cleanup_ctx.append(issuer_keys_ctx)
    app.router.add_get("/-/package/{tail:.*}/trust", list_trust)
    app.router.add_post("/-/package/{tail:.*}/trust", add_trust)
    app.router.add_delete("/-/package/{tail:.*}/trust/{id}", revoke_trust)
    app.router.add_post("/-/npm/v1/oidc/token/exchange/package/{tail:.*}", exchange)
