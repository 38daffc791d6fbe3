"""The `components` of tarhold's OpenAPI document: schemas, parameters, error responses.

Schemas describe what tarhold reads and writes; npm's documents carry more
fields than any client needs, so the packument schemas stay open
(`additionalProperties`) and name the fields npm relies on.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], *, required: tuple[str, ...] = (), open_: bool = False, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if not open_:
        schema["additionalProperties"] = False
    return schema


STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
DATE: Schema = {"type": "string", "format": "date-time"}
NULLABLE_STR: Schema = {"type": ["string", "null"]}
NULLABLE_DATE: Schema = {"type": ["string", "null"], "format": "date-time"}
STR_MAP: Schema = {"type": "object", "additionalProperties": STR}
CIDRS: Schema = {"type": ["array", "null"], "items": STR, "description": "allowed client networks, e.g. 10.0.0.0/8"}
GRANT: Schema = {
    "type": "string",
    "pattern": r"^(pkg|user):(read|read\+write)=\S+$",
    "description": "TYPE:LEVEL=VALUE: pkg:read, pkg:read+write, user:read or user:read+write over *,"
    " a package (left-pad, @acme/ui), a scope (@acme/*) or a user (~alice)",
    "examples": ["pkg:read+write=@acme/*", "user:read=~alice"],
}
GRANTS: Schema = {"type": ["array", "null"], "items": GRANT, "description": "null: the user's full rights"}

DEPENDENCIES = {key: STR_MAP for key in (
    "dependencies", "devDependencies", "peerDependencies", "optionalDependencies", "bundleDependencies",
)}

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": {"type": "string", "description": "what npm prints after `npm ERR!`"}}, required=("error",)),
    "Ok": obj({"ok": {"type": ["boolean", "string"]}, "success": BOOL}, open_=True),
    "Person": obj({"name": STR, "email": STR, "url": STR}, open_=True),
    "Dist": obj({
        "tarball": {"type": "string", "format": "uri", "description": "rewritten to this registry's public URL"},
        "shasum": STR, "integrity": {"type": "string", "description": "sha512-... (SRI)"},
        "fileCount": INT, "unpackedSize": INT,
        "attestations": obj({"url": {"type": "string", "format": "uri", "description": "this registry's attestations endpoint"},
                             "provenance": obj({"predicateType": STR}, open_=True)}, open_=True),
    }, required=("tarball", "shasum"), open_=True),
    "Manifest": obj({
        "name": STR, "version": STR, "description": STR, "main": STR, "_id": STR,
        **DEPENDENCIES,
        "bin": {"type": ["object", "string"]}, "engines": STR_MAP, "deprecated": STR,
        "dist": ref("Dist"), "_npmUser": ref("Person"), "maintainers": {"type": "array", "items": ref("Person")},
    }, required=("name", "version", "dist"), open_=True, description="one version of a package (package.json plus dist)"),
    "Packument": obj({
        "_id": STR, "_rev": STR, "name": STR, "description": STR,
        "dist-tags": ref("DistTags"),
        "versions": {"type": "object", "additionalProperties": ref("Manifest")},
        "time": {"type": "object", "additionalProperties": DATE, "description": "created, modified and one entry per version"},
        "maintainers": {"type": "array", "items": ref("Person")},
        "readme": STR, "license": STR, "keywords": {"type": "array", "items": STR},
    }, required=("name", "versions", "dist-tags"), open_=True,
        description="the full package document (`application/json`)"),
    "AbbreviatedManifest": obj({
        "name": STR, "version": STR, **DEPENDENCIES,
        "bin": {"type": ["object", "string"]}, "engines": STR_MAP, "deprecated": STR,
        "dist": ref("Dist"), "_hasShrinkwrap": BOOL, "hasInstallScript": BOOL,
    }, required=("name", "version", "dist"), open_=True),
    "AbbreviatedPackument": obj({
        "name": STR, "modified": DATE, "dist-tags": ref("DistTags"),
        "versions": {"type": "object", "additionalProperties": ref("AbbreviatedManifest")},
    }, required=("name", "versions", "dist-tags"), open_=True,
        description="what `npm install` reads (`Accept: application/vnd.npm.install-v1+json`)"),
    "DistTags": {"type": "object", "additionalProperties": STR, "examples": [{"latest": "1.2.3", "next": "2.0.0-rc.1"}]},
    "PublishBody": obj({
        "_id": STR, "name": STR, "description": STR, "access": {"type": ["string", "null"]},
        "dist-tags": ref("DistTags"),
        "versions": {"type": "object", "additionalProperties": ref("Manifest"), "description": "exactly the version being published"},
        "_attachments": {"type": "object", "additionalProperties": obj({
            "content_type": STR, "data": {"type": "string", "contentEncoding": "base64"}, "length": INT,
        }, required=("data",), open_=True), "description": "the tarball, keyed by its file name"},
    }, required=("name", "versions", "_attachments"), open_=True, description="what `npm publish` sends"),
    "PackumentChange": obj({"_id": STR, "_rev": STR, "name": STR, "versions": {"type": "object"}, "maintainers": {"type": "array", "items": ref("Person")}, "dist-tags": ref("DistTags")}, open_=True,
        description="the packument with a change applied: `npm deprecate`, `npm owner add|rm`, `npm unpublish pkg@version`"),
    "SearchResults": obj({
        "objects": {"type": "array", "items": obj({
            "package": obj({"name": STR, "version": STR, "description": STR, "keywords": {"type": "array", "items": STR},
                            "date": STR, "links": STR_MAP, "publisher": ref("Person"),
                            "maintainers": {"type": "array", "items": ref("Person")}}, required=("name",), open_=True),
            "score": {"type": "object"}, "searchScore": {"type": "number"}, "flags": {"type": "object"},
        }, required=("package",), open_=True)},
        "total": INT, "time": STR,
    }, required=("objects", "total")),
    "CouchUser": obj({
        "_id": STR, "name": STR, "password": STR, "email": STR, "type": STR,
        "roles": {"type": "array"}, "date": STR,
    }, required=("name", "password"), open_=True, description="what `npm adduser` / `npm login --auth-type=legacy` send"),
    "CouchUserCreated": obj({"ok": BOOL, "id": STR, "token": STR}, required=("token",)),
    "CouchUserDocument": obj({"_id": STR, "name": STR, "email": STR, "type": STR, "roles": {"type": "array"}, "date": STR}),
    "Whoami": obj({"username": STR}, required=("username",)),
    "Profile": obj({
        "name": STR, "email": STR, "email_verified": BOOL, "created": DATE, "updated": DATE, "tfa": BOOL,
        "cidr_whitelist": CIDRS, "fullname": STR, "homepage": STR, "freenode": STR, "twitter": STR, "github": STR,
    }),
    "ProfileChange": obj({
        "email": NULLABLE_STR, "fullname": NULLABLE_STR, "homepage": NULLABLE_STR, "freenode": NULLABLE_STR,
        "twitter": NULLABLE_STR, "github": NULLABLE_STR,
        "password": obj({"old": STR, "new": STR}, required=("old", "new")),
        "tfa": {"description": "`npm profile enable-2fa|disable-2fa`: {password, mode: auth-and-writes | auth-only |"
                " disable} answers {tfa: otpauth URL} (or the mode); then [first code] answers {tfa: [recovery codes]}",
                "oneOf": [obj({"password": STR, "mode": {"enum": ["auth-and-writes", "auth-only", "disable"]}},
                              required=("password", "mode")),
                          {"type": "array", "items": STR, "minItems": 1, "maxItems": 1}]},
    }, open_=True),
    "Token": obj({
        "token": {"type": "string", "description": "the first characters only (masked)"},
        "key": {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "name": STR, "cidr_whitelist": CIDRS,
        "readonly": BOOL, "created": DATE, "updated": DATE, "expires": NULLABLE_DATE,
        "grants": GRANTS, "last_used": NULLABLE_DATE,
    }, open_=True, description="a token as `npm token list` shows it"),
    "TokenList": obj({"objects": {"type": "array", "items": ref("Token")}, "total": INT, "urls": {"type": "object"}}),
    "TokenCreate": obj({
        "password": STR, "readonly": BOOL, "cidr_whitelist": CIDRS, "name": STR,
        "expires": {"type": ["integer", "string"], "description": "whole days (as npm sends), or a date like 2030-01-31"},
        "packages_and_scopes_permission": {"enum": ["read-only", "read-write"]},
        "grants": {**GRANTS, "description": "tarhold extension: limit the token to these grants"},
    }, required=("password",), open_=True, description="what `npm token create` sends"),
    "TokenCreated": {"allOf": [ref("Token"), obj({"token": {"type": "string", "description": "the token, shown this once"}}, open_=True)]},
    "LoginStart": obj({"loginUrl": {"type": "string", "format": "uri"}, "doneUrl": {"type": "string", "format": "uri"}}, required=("loginUrl", "doneUrl")),
    "LoginDone": obj({"token": STR}, required=("token",)),
    "Health": obj({
        "status": {"enum": ["ok", "degraded", "error"]},
        "checks": {"type": "object", "additionalProperties": obj({"status": STR, "error": STR})},
        "uplinks": {"type": "object", "additionalProperties": {"type": "object"}},
    }),
    "AuditRequest": {"type": "object", "description": "passed unchanged to the uplink for public packages"},
    "AdminUser": obj({"name": STR, "email": NULLABLE_STR, "admin": BOOL, "created": DATE, "updated": DATE}, required=("name", "admin")),
    "AdminUserList": obj({"users": {"type": "array", "items": ref("AdminUser")}, "total": INT}, required=("users", "total")),
    "AdminUserCreate": obj({
        "name": {"type": "string", "pattern": "^[a-z0-9_-][a-z0-9._-]{0,63}$"},
        "password": {"type": "string", "minLength": 8}, "email": NULLABLE_STR, "admin": BOOL,
    }, required=("name", "password")),
    "AdminUserChange": obj({"password": {"type": "string", "minLength": 8}, "email": NULLABLE_STR, "admin": BOOL}),
    "AdminUserRemoved": obj({"ok": BOOL, "name": STR, "revoked_tokens": INT}),
    "AdminToken": obj({
        "key": {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "user": STR, "name": NULLABLE_STR,
        "token": {"type": "string", "description": "masked: the first characters and an ellipsis"},
        "readonly": BOOL, "grants": GRANTS, "cidr_whitelist": CIDRS,
        "rate_limit": {"type": ["integer", "null"], "description": "requests per minute; null: the configured default"},
        "created": DATE, "last_used": NULLABLE_DATE, "expires": NULLABLE_DATE,
        "expired": {"type": "boolean", "description": "expired tokens stay listed for a while before they go"},
    }, required=("key", "user", "token")),
    "AdminTokenList": obj({"tokens": {"type": "array", "items": ref("AdminToken")}, "total": INT}, required=("tokens", "total")),
    "AdminTokenCreate": obj({
        "user": STR, "grants": GRANTS, "readonly": BOOL, "cidr_whitelist": CIDRS,
        "expires": {"type": ["string", "integer", "null"], "description": "a lifetime (30d, 12h, 1w), a whole number of days, or a date (2030-01-31)",
                    "examples": ["30d"]},
        "rate_limit": {"type": ["integer", "null"], "minimum": 1}, "name": NULLABLE_STR,
    }, required=("user",)),
    "AdminTokenCreated": {"allOf": [ref("AdminToken"), obj({"token": {"type": "string", "description": "the token, shown this once"}}, open_=True)]},
    "AdminTokenRevoked": obj({"ok": BOOL, "user": STR, "key": STR}),
    "SigningKeys": obj({"keys": {"type": "array", "items": obj({
        "keyid": {"type": "string", "description": "SHA256: and the base64 SHA-256 of the key"},
        "keytype": {"const": "ecdsa-sha2-nistp256"}, "scheme": {"const": "ecdsa-sha2-nistp256"},
        "key": {"type": "string", "description": "base64 DER SubjectPublicKeyInfo"}, "expires": NULLABLE_DATE,
    }, required=("keyid", "keytype", "scheme", "key", "expires"))}}, required=("keys",)),
    "Attestations": obj({"attestations": {"type": "array", "items": obj({
        "predicateType": {"type": "string", "description": "what the statement says, e.g. SLSA provenance v1"},
        "bundle": {"type": "object", "description": "the Sigstore bundle: mediaType, verificationMaterial, dsseEnvelope"},
    }, required=("predicateType", "bundle"), open_=True)}}, required=("attestations",), open_=True),
    "PackageMfa": obj({
        "publish_requires_tfa": BOOL, "automation_token_overrides_tfa": BOOL,
        "publish_requires_stage": {"type": "boolean", "description": "tarhold: versions come in through npm stage only"},
        "access": {"enum": ["public", "restricted", "private"], "description": "an org package's visibility (alone)"},
    }, description="what `npm access set mfa=...|status=...` sends, or tarhold's publish_requires_stage"),
    "PolicyRuleCreate": obj({
        "kind": {"enum": ["block", "allow"]},
        "package": {"type": "string", "description": "a package name, or a glob like `left-pad-*`"},
        "scope": {"type": "string", "description": "every package of a scope: `@acme`"},
        "versions": {"type": "string", "description": "an npm semver range; absent: every version", "examples": [">=4.17.21 <4.17.23"]},
        "reason": {"type": "string", "maxLength": 500, "description": "shown in the 403 a client gets"},
        "expires": {"type": "string", "description": "a lifetime (30d, 12h) or a date (2030-01-31)", "examples": ["30d"]},
        "strategy": {"enum": ["remove", "replace"], "description": "block rules: hide the versions, or serve the newest older release under their numbers"},
    }, required=("kind",)),
    "PolicyRule": obj({
        "id": STR, "kind": {"enum": ["block", "allow"]}, "package": STR, "scope": STR, "versions": STR, "reason": STR,
        "expires": DATE, "strategy": STR, "source": {"enum": ["runtime", "osv"]}, "by": STR, "created": DATE,
        "advisory": STR, "advisory_modified": STR,
    }, required=("id", "kind", "source")),
    "PolicyRuleList": obj({"rules": {"type": "array", "items": ref("PolicyRule")}, "total": INT}, required=("rules", "total")),
    "PolicyRuleRemoved": obj({"ok": BOOL, "id": STR}),
    "StagedVersion": obj({
        "id": {"type": "string", "format": "uuid"}, "packageName": STR, "version": STR,
        "tag": {"type": "string", "description": "the dist-tag approval sets"}, "createdAt": DATE,
        "actor": {"type": "string", "description": "who staged it (`_npmUser` once published)"},
        "actorType": {"enum": ["user"]}, "shasum": STR, "integrity": STR, "status": {"enum": ["staged"]},
    }, required=("id", "packageName", "version", "tag", "createdAt", "actor", "shasum"),
        description="a version waiting for a maintainer's `npm stage approve`"),
    "StagedVersionList": obj({
        "items": {"type": "array", "items": ref("StagedVersion")}, "page": INT, "perPage": INT,
        "total": {"type": "integer", "description": "every stage the caller may see (with the filter)"},
    }, required=("items", "page", "perPage", "total")),
    "StageCreated": obj({"message": STR, "stageId": {"type": "string", "format": "uuid"}}, required=("message", "stageId")),
    "Message": obj({"message": STR}, required=("message",)),
}


def path_param(name: str, description: str, **schema: Any) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string", **schema}}


PARAMETERS: dict[str, Schema] = {
    "package": path_param(
        "package", "a package name: `left-pad`, or a scoped name with its slash encoded, `@acme%2fui`"
    ),
    "scope": path_param("scope", "the scope of a scoped package, without the @ (`acme` for `@acme/ui`)"),
    "name": path_param("name", "the package name inside its scope (`ui` for `@acme/ui`)"),
    "spec": path_param("spec", "a version (`1.2.3`) or a dist-tag (`latest`)"),
    "filename": path_param("filename", "the tarball's file name, `ui-1.2.3.tgz`"),
    "rev": path_param("rev", "the packument revision the client last read (`_rev`)"),
    "tag": path_param("tag", "a dist-tag: `latest`, `next`, `beta`"),
    "packageVersion": path_param("packageVersion", "`{name}@{version}`: `left-pad@1.3.0`, or scoped `@acme%2fui@1.0.0`"),
    "user": path_param("user", "a user name", pattern="^[a-z0-9_-][a-z0-9._-]{0,63}$"),
    "couchUser": path_param("couchUser", "a user name (`alice` in `org.couchdb.user:alice`)"),
    "key": path_param("key", "a token key (32 hex digits, from a token list)"),
    "tokenOrKey": path_param("tokenOrKey", "a token key from `npm token list`, or the token itself"),
    "token": path_param("token", "the token to revoke (npm logout sends its own)"),
    "session": path_param("session", "the login session id from loginUrl / doneUrl"),
    "file": path_param("file", "a file of the docs page: `docs.css`"),
    "id": path_param("id", "a policy rule id, from the rule list (`r-1a2b3c4d`, `osv-MAL-2025-1234`)"),
    "stageId": path_param("stageId", "a stage id (a UUID, from `npm stage publish` or `npm stage list`)", format="uuid"),
}


def error_response(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


RESPONSES: dict[str, Schema] = {
    "BadRequest": error_response("the request is malformed (the message says what is wrong)"),
    "Unauthorized": error_response("no credentials, or ones that do not check out"),
    "Forbidden": error_response("the credentials are fine but may not do this"),
    "NotFound": error_response("no such package, version, user or token"),
    "Conflict": error_response("someone else changed it first, or the name is taken"),
    "TooManyRequests": error_response("the token's rate limit is used up; see Retry-After"),
}


SECURITY_SCHEMES: dict[str, Schema] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "a token from npm login, npm token create or tarhold token create"},
    "basic": {"type": "http", "scheme": "basic", "description": "user name and password (`_auth` in .npmrc)"},
}


def components() -> dict[str, Any]:
    return {
        "schemas": SCHEMAS, "parameters": PARAMETERS, "responses": RESPONSES,
        "securitySchemes": SECURITY_SCHEMES,
    }
