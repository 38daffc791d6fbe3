"""tarhold's OpenAPI 3.1 document: every endpoint it serves, npm-compatible and admin.

npm's package URLs do not fit a route table (one catch-all route serves
them), so the document lists their concrete forms: each package path comes
unscoped or with an encoded scope (`/{package}`: `left-pad`, `@acme%2fui`)
and with a plain slash (`/@{scope}/{name}`). Every GET also answers HEAD.

`build_document()` is pure; `openapi_document(app)` caches it per app and
the servers entry is filled in per request (the public URL may depend on
forwarded headers).
"""

from __future__ import annotations

from typing import Any

from registry.http.openapi_ops import (
    PACKAGE_FORMS,
    PUBLIC,
    READ_ERRORS,
    WRITE_ERRORS,
    json_body,
    json_response,
    op,
    query,
)
from registry.http.openapi_orgs import org_paths
from registry.http.openapi_schemas import STR, Schema, components, ref
from registry.http.openapi_trust import trust_paths

VERSION = "0.1.0"
TAGS = [
    ("packages", "packuments, versions and tarballs; publish, deprecate, owners, unpublish"),
    ("dist-tags", "npm dist-tag ls|add|rm"),
    ("search", "npm search"),
    ("audit", "npm audit, passed to the uplink for public packages"),
    ("users", "npm adduser, login, whoami, logout, profile"),
    ("tokens", "npm token list|create|revoke"),
    ("login", "npm's web login flow (npm login since npm 9)"),
    ("registry", "ping, health, this document"),
    ("trust", "npm trust github|gitlab|circleci|list|revoke, and the OIDC token exchange of trusted publishing"),
    ("stage", "npm stage publish|list|view|download|approve|reject: versions published once a maintainer approves"),
    ("orgs", "npm org, npm team, npm access: organizations, their members, teams, grants and private packages"),
    ("admin", "tarhold's admin API: admin users only"),
    ("web", "the web UI's HTML pages (with `web.enable`, the default)"),
]
ADMIN_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]
ADMIN_NOTE = (
    "Admin users only: 401 anonymous, 403 for other users. A read-only token may only read;"
    " a token with grants needs `user:read=*` to read and `user:read+write=*` to change anything."
)


# -- package paths, in their unscoped/encoded and plain-scoped forms ---------------------

PACKUMENT_CONTENT = {
    "application/json": {"schema": ref("Packument")},
    "application/vnd.npm.install-v1+json": {"schema": ref("AbbreviatedPackument")},
}
VERSION_STRING = json_body({"type": "string", "description": "a version, as a JSON string"}, "the version, e.g. \"1.2.3\"")


def package_paths() -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    for base, names, suffix in PACKAGE_FORMS:
        s = suffix
        paths[base] = {
            "get": op(f"getPackument{s}", "packages", "Read a packument", {
                "200": {"description": "the full or abbreviated packument (ETag; 304 on If-None-Match; gzip when asked)",
                        "content": PACKUMENT_CONTENT},
                "304": {"description": "not modified"},
            }, params=names, errors=READ_ERRORS, description=(
                "The local packument, or the uplink's, merged as the package's rule says. Send"
                " `Accept: application/vnd.npm.install-v1+json` for the abbreviated document."
            )),
            "put": op(f"putPackage{s}", "packages", "Publish a version, or change the packument", {
                "201": json_response("published or changed", "Ok"),
                "200": json_response("changed", "Ok"),
            }, params=names, errors=WRITE_ERRORS, body={"required": True, "content": {"application/json": {
                "schema": {"oneOf": [ref("PublishBody"), ref("PackumentChange")]}}}},
                description="`npm publish` (a body with `_attachments`), or a packument change (deprecate, owners)."),
        }
        paths[f"{base}/{{spec}}"] = {
            "get": op(f"getManifest{s}", "packages", "Read one version (by version or dist-tag)", {
                "200": json_response("the version's manifest", "Manifest"),
            }, params=[*names, "spec"], errors=READ_ERRORS),
            "put": op(f"putDistTagLegacy{s}", "dist-tags", "Set a dist-tag (older npm clients)", {
                "201": json_response("the dist-tags now", "Ok"),
            }, params=[*names, "spec"], body=VERSION_STRING, errors=WRITE_ERRORS),
        }
        paths[f"{base}/-/{{filename}}"] = {
            "get": op(f"getTarball{s}", "packages", "Download a tarball", {
                "200": {"description": "the tarball, streamed (from storage, or from the uplink while it is mirrored)",
                        "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
                "304": {"description": "not modified"},
                "502": json_response("the uplink failed before sending anything", "Error"),
            }, params=[*names, "filename"], errors=READ_ERRORS),
        }
        paths[f"{base}/-rev/{{rev}}"] = {
            "put": op(f"changePackument{s}", "packages", "Change the packument at a revision", {
                "201": json_response("changed", "Ok"),
                "200": json_response("changed", "Ok"),
            }, params=[*names, "rev"], body=json_body(ref("PackumentChange")), errors=WRITE_ERRORS,
                description="`npm deprecate`, `npm owner add|rm`, and the first step of `npm unpublish pkg@version`."),
            "delete": op(f"unpublishPackage{s}", "packages", "Unpublish the whole package", {
                "200": json_response("unpublished", "Ok"),
            }, params=[*names, "rev"], errors=WRITE_ERRORS),
        }
        paths[f"{base}/-/{{filename}}/-rev/{{rev}}"] = {
            "delete": op(f"deleteTarball{s}", "packages", "Delete one tarball (npm unpublish pkg@version)", {
                "200": json_response("deleted", "Ok"),
            }, params=[*names, "filename", "rev"], errors=WRITE_ERRORS),
        }
        tags = f"/-/package{base}/dist-tags"
        paths[tags] = {
            "get": op(f"getDistTags{s}", "dist-tags", "List dist-tags", {
                "200": json_response("tag: version", "DistTags"),
            }, params=names, errors=READ_ERRORS),
            "post": op(f"setDistTags{s}", "dist-tags", "Set several dist-tags", {
                "201": json_response("the dist-tags now", "Ok"),
            }, params=names, body=json_body(ref("DistTags")), errors=WRITE_ERRORS),
        }
        paths[f"/-/package{base}/access"] = {
            "post": op(f"setPackageMfa{s}", "packages", "Set the package's two-factor requirement (npm access set mfa=...)", {
                "200": json_response("the settings now", {"type": "object", "properties": {"ok": {"type": "boolean"}, "mfa": {
                    "enum": ["none", "publish", "automation"]}, "publish_requires_stage": {"type": "boolean"}}}),
            }, params=names, body=json_body(ref("PackageMfa")), errors=WRITE_ERRORS,
                description="Maintainers only. `publish`: every publish needs a one-time password, bypass tokens"
                            " included; `automation`: bypass tokens may publish without one. `access` (public/"
                            "restricted, npm access set status=...) changes an org package's visibility (orgs)."),
        }
        paths[f"{tags}/{{tag}}"] = {
            "put": op(f"putDistTag{s}", "dist-tags", "Set a dist-tag (npm dist-tag add)", {
                "201": json_response("the dist-tags now", "Ok"),
            }, params=[*names, "tag"], body=VERSION_STRING, errors=WRITE_ERRORS),
            "delete": op(f"deleteDistTag{s}", "dist-tags", "Remove a dist-tag (npm dist-tag rm)", {
                "200": json_response("the dist-tags now", "Ok"),
            }, params=[*names, "tag"], errors=WRITE_ERRORS),
        }
    return paths


# -- npm's account, token, login, search and audit endpoints -------------------------------


def npm_paths() -> dict[str, Schema]:
    user = "/-/user/org.couchdb.user:{couchUser}"
    adduser = op("addUser", "users", "Log in (right password) or register (new name)", {
        "201": json_response("signed in: a new token", "CouchUserCreated"),
    }, params=["couchUser"], body=json_body(ref("CouchUser")), errors=("BadRequest", "Unauthorized", "Forbidden"),
        description="`npm adduser`, `npm login --auth-type=legacy`.")
    search_params = [
        query("text", "words, and qualifiers like `scope:acme`"),
        query("size", "results per page (1-250)", {"type": "integer"}),
        query("from", "offset", {"type": "integer"}),
    ]
    return {
        "/-/ping": {"get": op("ping", "registry", "Is the registry up (never authenticated)", {
            "200": json_response("up", {"type": "object"})}, security=PUBLIC)},
        "/health": {"get": op("health", "registry", "Storage, database and uplink health (for load balancers)", {
            "200": json_response("healthy, or degraded by an uplink's open circuit", "Health"),
            "503": json_response("a backend fails", "Health")}, security=PUBLIC)},
        "/-/metrics": {"get": op("metrics", "registry", "Prometheus metrics in text format (never authenticated)", {
            "200": {"description": "Prometheus text exposition format",
                    "content": {"text/plain": {"schema": STR}}}}, security=PUBLIC)},
        "/-/whoami": {"get": op("whoami", "users", "Who the credentials belong to", {
            "200": json_response("the user", "Whoami")}, errors=("Unauthorized",))},
        user: {
            "get": op("getUserDocument", "users", "A user's public document (npm owner add)", {
                "200": json_response("the user", "CouchUserDocument")}, params=["couchUser"], errors=("Unauthorized", "NotFound")),
            "put": adduser,
        },
        f"{user}/-rev/{{rev}}": {"put": {**adduser, "operationId": "addUserAtRev", "parameters": [
            {"$ref": "#/components/parameters/couchUser"}, {"$ref": "#/components/parameters/rev"}]}},
        "/-/user/token/{token}": {"delete": op("logout", "users", "Revoke a token (npm logout)", {
            "200": json_response("revoked (or already gone)", "Ok")}, params=["token"], errors=("Forbidden",))},
        "/-/npm/v1/user": {
            "get": op("getProfile", "users", "npm profile get", {"200": json_response("the profile", "Profile")},
                      errors=("Unauthorized",)),
            "post": op("setProfile", "users", "npm profile set (email, public fields, password)", {
                "200": json_response("the profile now", "Profile")}, body=json_body(ref("ProfileChange")),
                errors=("BadRequest", "Unauthorized", "Forbidden")),
        },
        "/-/npm/v1/tokens": {
            "get": op("listTokens", "tokens", "npm token list: the caller's tokens, masked", {
                "200": json_response("the tokens", "TokenList")}, errors=("Unauthorized",)),
            "post": op("createToken", "tokens", "npm token create", {
                "201": json_response("the new token, shown once", "TokenCreated")}, body=json_body(ref("TokenCreate")),
                errors=("BadRequest", "Unauthorized", "Forbidden")),
        },
        "/-/npm/v1/tokens/token/{tokenOrKey}": {"delete": op("revokeToken", "tokens", "npm token revoke", {
            "204": {"description": "revoked"}}, params=["tokenOrKey"], errors=("Unauthorized", "Forbidden", "NotFound"))},
        "/-/v1/login": {"post": op("startWebLogin", "login", "Open a web login session", {
            "200": json_response("where to sign in, and where to poll", "LoginStart")},
            body={"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {"create": {"type": "boolean"}}}}}})},
        "/-/v1/login/{session}": {
            "get": op("showLoginForm", "login", "The sign-in page", {
                "200": {"description": "an HTML form", "content": {"text/html": {"schema": STR}}}}, params=["session"]),
            "post": op("submitLoginForm", "login", "Sign in on the page", {
                "200": {"description": "signed in (HTML)", "content": {"text/html": {"schema": STR}}},
                "400": {"description": "wrong credentials (the form again)", "content": {"text/html": {"schema": STR}}}},
                params=["session"], body={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "properties": {"username": STR, "password": STR}}}}}),
        },
        "/-/v1/done/{session}": {"get": op("pollWebLogin", "login", "Poll for the token", {
            "200": json_response("signed in: the token, delivered once", "LoginDone"),
            "202": {"description": "still waiting (Retry-After: 1)"}},
            params=["session"], extra_params=[query("secret", "the secret from doneUrl")], errors=("NotFound",))},
        "/-/npm/v1/keys": {"get": op("signingKeys", "registry", "The registry's public signing keys (npm audit signatures)", {
            "200": json_response("every key, the signing one first; a rotated key keeps its expires", "SigningKeys")},
            security=PUBLIC)},
        "/-/npm/v1/attestations/{packageVersion}": {"get": op("attestations", "packages", "A version's provenance attestations", {
            "200": json_response("the Sigstore bundle kept at publish; for a mirrored version, the uplink's answer", "Attestations"),
            "502": json_response("the uplink failed", "Error")}, params=["packageVersion"], errors=("BadRequest", *READ_ERRORS))},
        "/-/v1/search": {"get": op("search", "search", "Search packages (local first, then the uplink)", {
            "200": json_response("results", "SearchResults")}, extra_params=search_params)},
        **{path: {"post": op(op_id, "audit", summary, {
            "200": json_response("the uplink's answer", {"type": "object"})},
            body=json_body(ref("AuditRequest")), errors=("NotFound",))}
            for path, op_id, summary in (
                ("/-/npm/v1/security/advisories/bulk", "auditBulk", "npm audit (bulk advisories)"),
                ("/-/npm/v1/security/audits/quick", "auditQuick", "npm audit (quick audit)"))},
    }


def tarhold_paths() -> dict[str, Schema]:
    admin: dict[str, Any] = {"security": ADMIN_SECURITY, "description": ADMIN_NOTE}
    users, tokens, policy = "/-/tarhold/users", "/-/tarhold/tokens", "/-/tarhold/policy"
    return {
        "/-/openapi.json": {"get": op("openapi", "registry", "This document", {
            "200": json_response("OpenAPI 3.1", {"type": "object"})}, security=PUBLIC)},
        "/-/docs": {"get": op("docs", "registry", "This document as a readable page (works offline)", {
            "200": {"description": "HTML", "content": {"text/html": {"schema": STR}}}}, security=PUBLIC)},
        "/-/static/{file}": {"get": op("staticFile", "registry", "Assets of the docs page", {
            "200": {"description": "the file", "content": {"text/css": {"schema": STR}}}},
            params=["file"], errors=("NotFound",), security=PUBLIC)},
        users: {
            "get": op("adminListUsers", "admin", "List users", {"200": json_response("every user", "AdminUserList")},
                      errors=("Unauthorized", "Forbidden"), **admin),
            "post": op("adminCreateUser", "admin", "Create a user", {"201": json_response("created", "AdminUser")},
                       body=json_body(ref("AdminUserCreate")), errors=("BadRequest", "Unauthorized", "Forbidden", "Conflict"), **admin),
        },
        f"{users}/{{user}}": {
            "get": op("adminGetUser", "admin", "Read a user", {"200": json_response("the user", "AdminUser")},
                      params=["user"], errors=("Unauthorized", "Forbidden", "NotFound"), **admin),
            "patch": op("adminChangeUser", "admin", "Change a user's password, email or admin flag", {
                "200": json_response("the user now", "AdminUser")}, params=["user"], body=json_body(ref("AdminUserChange")),
                errors=("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict"), **admin),
            "delete": op("adminRemoveUser", "admin", "Remove a user and revoke its tokens", {
                "200": json_response("removed", "AdminUserRemoved")}, params=["user"],
                errors=("Unauthorized", "Forbidden", "NotFound", "Conflict"), **admin),
        },
        tokens: {
            "get": op("adminListTokens", "admin", "List tokens (masked), of one user or all", {
                "200": json_response("the tokens", "AdminTokenList")},
                extra_params=[query("user", "only this user's tokens")], errors=("Unauthorized", "Forbidden", "NotFound"), **admin),
            "post": op("adminCreateToken", "admin", "Create a token for any user, with grants", {
                "201": json_response("the new token, shown once", "AdminTokenCreated")}, body=json_body(ref("AdminTokenCreate")),
                errors=("BadRequest", "Unauthorized", "Forbidden", "NotFound"), **admin),
        },
        f"{tokens}/{{user}}/{{key}}": {"delete": op("adminRevokeToken", "admin", "Revoke a token", {
            "200": json_response("revoked", "AdminTokenRevoked")}, params=["user", "key"],
            errors=("BadRequest", "Unauthorized", "Forbidden", "NotFound"), **admin)},
        policy: {
            "get": op("adminListPolicyRules", "admin", "List the mirror policy's run-time rules", {
                "200": json_response("every run-time rule", "PolicyRuleList")}, errors=("Unauthorized", "Forbidden"), **admin),
            "post": op("adminAddPolicyRule", "admin", "Block or allow versions on every instance within seconds", {
                "201": json_response("the rule", "PolicyRule")}, body=json_body(ref("PolicyRuleCreate")),
                errors=("BadRequest", "Unauthorized", "Forbidden", "Conflict"), **admin),
        },
        f"{policy}/{{id}}": {"delete": op("adminRemovePolicyRule", "admin", "Remove a run-time rule", {
            "200": json_response("removed", "PolicyRuleRemoved")}, params=["id"],
            errors=("Unauthorized", "Forbidden", "NotFound"), **admin)},
    }


def stage_paths() -> dict[str, Schema]:
    """npm's staging API (routes_stage.py): whoever may see a stage is its package's maintainers and its stager."""
    review = ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict")
    otp = "A user with 2FA on sends a one-time password in `npm-otp` (401 `WWW-Authenticate: OTP` without it)."
    return {
        "/-/stage": {"get": op("listStagedVersions", "stage", "The staged versions the caller may see, most recent first", {
            "200": json_response("one page", "StagedVersionList")}, errors=("BadRequest", "Unauthorized"), extra_params=[
                query("package", "only this package's stages"), query("page", "0-based page", {"type": "integer", "minimum": 0}),
                query("perPage", "items per page (default 10)", {"type": "integer", "minimum": 1, "maximum": 100})])},
        "/-/stage/package/{package}": {"post": op("stageVersion", "stage", "Stage a version (npm stage publish)", {
            "201": json_response("staged: its id", "StageCreated")}, params=["package"], body=json_body(ref("PublishBody")),
            errors=("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "TooManyRequests"), description=(
                "The `npm publish` body, checked as a publish is; whoever may publish the package may stage it (no one-time"
                " password). The version number is held until the stage is approved or rejected: 409 for a publish or"
                " another stage of it."))},
        "/-/stage/{stageId}": {
            "get": op("getStagedVersion", "stage", "One staged version", {"200": json_response("the stage", "StagedVersion")},
                      params=["stageId"], errors=("BadRequest", "Unauthorized", "NotFound")),
            "delete": op("rejectStagedVersion", "stage", "Reject: delete the stage and its tarball (npm stage reject)", {
                "204": {"description": "rejected"}}, params=["stageId"], errors=review, description=otp),
        },
        "/-/stage/{stageId}/tarball": {"get": op("getStagedTarball", "stage", "The staged tarball (npm stage download)", {
            "200": {"description": "the tarball", "content": {"application/octet-stream": {"schema": {
                "type": "string", "contentMediaType": "application/octet-stream"}}}}},
            params=["stageId"], errors=("BadRequest", "Unauthorized", "NotFound"))},
        "/-/stage/{stageId}/approve": {"post": op("approveStagedVersion", "stage", "Approve: publish the version (npm stage approve)", {
            "201": json_response("published", "Message")}, params=["stageId"], errors=review, description=(
                "A maintainer of the package (for a new package, its stager) publishes it with its dist-tag; `_npmUser`"
                " stays the stager and the manifest gets `_stage` (id, stagedBy, stagedAt, approvedBy, approvedAt). " + otp))},
    }


def web_paths() -> dict[str, Schema]:
    """The web UI (registry/web.py): HTML for browsers; a session cookie counts only on its GETs."""
    page = {"description": "an HTML page", "content": {"text/html": {"schema": STR}}}
    missing = {"description": "not found, or private and not readable by the visitor (HTML)",
               "content": {"text/html": {"schema": STR}}}
    form = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": {"username": STR, "password": STR, "next": STR}}}}}
    redirect = {"description": "done: a redirect (Location), with the session cookie set or cleared"}
    name = {"name": "package", "in": "path", "required": True, "schema": STR,
            "description": "the package name; scoped as `@scope/name`"}
    return {
        "/": {"get": op("webHome", "web", "The front page: search box and recent packages", {"200": page})},
        "/-/web/search": {"get": op("webSearch", "web", "Search results as a page", {"200": page},
                                    extra_params=[query("q", "words to find")])},
        "/-/web/detail/{package}": {"get": op("webPackage", "web", "A package's page", {"200": page, "404": missing},
                                              extra_params=[name, query("version", "the version to show")])},
        "/-/web/login": {
            "get": op("webLoginForm", "web", "The sign-in form", {"200": page}),
            "post": op("webLogin", "web", "Sign in: a read-only session token in an HttpOnly cookie", {
                "303": redirect, "401": page, "403": page, "429": page}, body=form),
        },
        "/-/web/logout": {"post": op("webLogout", "web", "Sign out: revoke the session token", {
            "303": redirect, "403": page})},
    }


def build_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (without servers: those depend on the request)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tarhold", "version": VERSION,
            "summary": "npm-compatible package registry: caching mirror and private publish target",
            "description": (
                "Every endpoint tarhold serves. Package paths come in two forms: `/{package}` (unscoped, or"
                " scoped with the slash encoded: `@acme%2fui`, as npm sends it) and `/@{scope}/{name}`."
                " Every GET also answers HEAD. Errors are `{\"error\": message}`, which npm prints."
                " Credentials: a bearer token or Basic user:password; most reads also work anonymously"
                " when the package's access rule allows it."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "security": [{}, {"bearer": []}, {"basic": []}],
        "paths": {**npm_paths(), **tarhold_paths(), **stage_paths(), **web_paths(), **package_paths(), **trust_paths(), **org_paths()},
        "components": components(),
    }
