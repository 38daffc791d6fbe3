"""The trusted-publishing part of tarhold's OpenAPI document: `/-/package/{name}/trust` and the
OIDC token exchange (routes_trust.py), as npm's trust.yaml and oidc.yaml describe them."""

from __future__ import annotations

from registry.http.openapi_ops import (
    PACKAGE_FORMS,
    PUBLIC,
    json_body,
    json_response,
    op,
)
from registry.http.openapi_schemas import STR, Schema, obj, path_param

CLAIMS: Schema = {
    "type": "object", "additionalProperties": True,
    "description": "the claim values a CI job's id token must carry. github: `repository`, `workflow_ref`"
                   " (`{file}` or exact), `environment`; gitlab: `project_path`, `ci_config_ref_uri`, `environment`;"
                   " circleci: `oidc.circleci.com/...`; a generic issuer: any claims, matched exactly",
}
PERMISSIONS: Schema = {"type": "array", "items": {"enum": ["createPackage", "createStagedPackage", "manageDistTags"]}}
NEW_CONFIG = obj({
    "type": {"type": "string", "description": "github, gitlab, circleci, or the name of a configured issuer"},
    "claims": CLAIMS, "permissions": PERMISSIONS,
}, required=("type", "claims", "permissions"))
CONFIG = obj({"id": {"type": "string", "format": "uuid"}, **NEW_CONFIG["properties"]},
             required=("id", "type", "claims", "permissions"))
CONFIGS: Schema = {"type": "array", "items": CONFIG}
EXCHANGED = obj({
    "token_type": {"enum": ["oidc"]}, "token": STR,
    "created": {"type": "string", "format": "date-time"}, "expires": {"type": "string", "format": "date-time"},
}, required=("token_type", "token", "created", "expires"))
EXCHANGE_ERROR = obj({"message": STR, "error": STR})
TRUST_NOTE = (
    "Maintainers only, with their one-time password (`npm-otp`) when their 2FA is on; refused (403) to a"
    " `--bypass-2fa` token and to a token from trusted publishing."
)
CONFIG_ID = path_param("id", "a trust configuration's id (a UUID, from `npm trust list`)", format="uuid")


def trust_paths() -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    errors = ("BadRequest", "Unauthorized", "Forbidden", "NotFound")
    for base, names, suffix in PACKAGE_FORMS:
        trust = f"/-/package{base}/trust"
        paths[trust] = {
            "get": op(f"getTrustedPublishers{suffix}", "trust", "List the package's trusted publishers (npm trust list)", {
                "200": json_response("the configurations", CONFIGS),
            }, params=names, errors=errors[1:], description=TRUST_NOTE),
            "post": op(f"addTrustedPublishers{suffix}", "trust", "Add trusted publishers (npm trust github|gitlab|circleci)", {
                "200": json_response("the configurations made", CONFIGS),
            }, params=names, body=json_body({"type": "array", "items": NEW_CONFIG, "maxItems": 10}),
                errors=(*errors, "Conflict"), description=TRUST_NOTE + " 409 for a copy of an existing one."),
        }
        paths[f"{trust}/{{id}}"] = {
            "delete": op(f"deleteTrustedPublisher{suffix}", "trust", "Revoke a trusted publisher (npm trust revoke)", {
                "204": {"description": "revoked"},
            }, params=names, extra_params=[CONFIG_ID], errors=errors, description=TRUST_NOTE),
        }
        paths[f"/-/npm/v1/oidc/token/exchange/package{base}"] = {
            "post": op(f"exchangeOidcToken{suffix}", "trust", "Trade a CI job's OIDC id token for a short-lived publish token", {
                "201": json_response("a token that can publish this package only, for minutes", EXCHANGED),
                "401": json_response("the id token does not verify (signature, issuer, audience, expiry)", EXCHANGE_ERROR),
                "403": json_response("no trust configuration of the package matches the job", EXCHANGE_ERROR),
            }, params=names, security=PUBLIC, description=(
                "The bearer is the id token (`Authorization: Bearer <id token>`), not an npm token: `npm publish`"
                " sends it in GitHub Actions, GitLab CI and CircleCI. Its issuer must be configured under"
                " `trusted_publishing.issuers`, its `aud` `npm:<registry host>`."
            )),
        }
    return paths
