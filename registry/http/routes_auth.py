"""Accounts and tokens over HTTP, as the npm CLI calls them.

- `PUT /-/user/org.couchdb.user:{name}`: `npm adduser`, `npm login --auth-type=legacy`
- `GET /-/user/org.couchdb.user:{name}`: a user's public document (`npm owner add`)
- `GET /-/whoami`, `DELETE /-/user/token/{token}` (`npm logout`)
- `GET|POST /-/npm/v1/user`: `npm profile get|set`, and `npm profile enable-2fa|disable-2fa` (routes_tfa.py)
- `GET|POST /-/npm/v1/tokens`, `DELETE /-/npm/v1/tokens/token/{key}`: `npm token`
- the web login flow (`npm login`, the default since npm 9): see login_page.py

What a token with grants needs here (user grants name the token's own user,
`~alice`, or `*`): `user:read` to see its account (whoami, `npm profile get`,
`npm token list`) and the public document of user X (`npm owner add X`
needs `user:read=~X` or `user:read=*`); `user:read+write` to change its
account (`npm profile set`) and to create or revoke tokens. Any token may
revoke itself (`npm logout`). A token creates only tokens whose grants its
own cover; created without `grants`, the new token inherits the creator's.

`install(app)` adds the auth middleware and all of these routes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from registry.domain.access import Identity
from registry.domain.cidrs import parse_cidrs
from registry.domain.clock import iso
from registry.domain.errors import BadRequest, Forbidden, NotFoundError, Unauthorized
from registry.domain.grants import (
    Grant,
    format_grants,
    parse_expires,
    parse_grants,
)
from registry.domain.token_limits import within_parent
from registry.domain.two_factor import profile_tfa, state_of
from registry.domain.users import (
    check_email,
    check_new_password,
    create_token,
    get_token_record,
    get_user,
    list_tokens,
    lookup_token,
    revoke_token,
    sign_in,
    token_hash,
    update_user,
    valid_user_name,
)
from registry.http.appkeys import CONFIG, DATABASE
from registry.http.auth import (
    TOKEN_KEY,
    auth_middleware,
    caches,
    identity_of,
    require_grant,
    require_user,
)
from registry.http.bodies import read_object
from registry.http.login_page import setup_web_login
from registry.http.otp import require_otp
from registry.http.routes_tfa import set_two_factor
from registry.http.sign_in import checked_password, guarded

USER_PATH = "/-/user/org.couchdb.user:{name}"
PROFILE_FIELDS = ("fullname", "homepage", "freenode", "twitter", "github")
MAX_FIELD = 256
MAX_CIDRS = 50
MAX_GRANTS = 100
GRANULAR_FIELDS = ("packages", "scopes", "orgs")


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON through orjson, never cached by a proxy (these bodies are per user)."""
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def optional_str(body: dict[str, Any], key: str, limit: int = MAX_FIELD) -> str | None:
    """A string field that may be absent, null or empty (all None); 400 when not a string."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"{key} must be a string of at most {limit} characters")
    return value


def user_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not valid_user_name(name):
        raise BadRequest(
            "invalid user name: use 1-64 lowercase letters, digits, '-', '_' or '.'"
        )
    return name


def token_view(record: dict[str, Any]) -> dict[str, Any]:
    """A token record as `npm token list` reads it; `token` is the masked prefix."""
    expires = record.get("expires")
    return {
        "token": record["token_prefix"], "key": record["key"], "name": record.get("name") or "",
        "cidr_whitelist": record.get("cidr_whitelist") or None,
        "readonly": bool(record.get("readonly")), "created": record["created"],
        "updated": record.get("updated", record["created"]),
        "expires": iso(expires) if expires is not None else None,
        "expired": expires is not None and expires <= time.time(),
        "grants": record.get("grants"), "last_used": record.get("last_used"),
        "rate_limit": record.get("rate_limit"), "bypass_2fa": bool(record.get("bypass_2fa")),
    }


def profile_view(user: dict[str, Any]) -> dict[str, Any]:
    """A user as `npm profile get` reads it."""
    view = {
        "name": user["name"], "email": user.get("email") or "", "email_verified": False,
        "created": user["created"], "updated": user.get("updated", user["created"]),
        "tfa": profile_tfa(user), "cidr_whitelist": None,
    }
    view.update({field: user.get(field) or "" for field in PROFILE_FIELDS})
    return view


# -- CouchDB-style users: adduser and legacy login ---------------------------


async def put_user(request: web.Request) -> web.Response:
    """Log in (right password) or register (new name); 201 with a fresh token either way."""
    name = user_name(request)
    body = await read_object(request)
    if body.get("name", name) != name:
        raise BadRequest("the name in the body does not match the URL")
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise BadRequest("password is required")
    email = optional_str(body, "email")
    db = request.app[DATABASE]
    await guarded(request, "adduser", name,
                  lambda: sign_in(db, name, password, email=email, max_users=request.app[CONFIG].auth.max_users))
    await require_otp(request, Identity(user=name), purpose="login")
    token, _ = await create_token(db, name, name="npm login")
    return json_response({"ok": True, "id": f"org.couchdb.user:{name}", "token": token}, 201)


async def get_user_document(request: web.Request) -> web.Response:
    """A user's public document ({name, email}) for any signed-in user.

    `npm owner add NAME` reads it to learn the new maintainer's email, which
    npm's adduser prompt already calls public. Anonymous requests get 401; a
    token with grants needs `user:read` for NAME (emails stay out of reach
    of tokens meant only for packages).
    """
    name = user_name(request)
    require_grant(require_user(request), "user", name, write=False)
    user = await get_user(request.app[DATABASE], name)
    if user is None:
        raise NotFoundError("no such user")
    return json_response({
        "_id": f"org.couchdb.user:{name}", "name": name, "email": user.get("email") or "",
        "type": "user", "roles": [], "date": user["created"],
    })


async def whoami(request: web.Request) -> web.Response:
    identity = require_user(request)
    require_grant(identity, "user", identity.user, write=False)
    return json_response({"username": identity.user})


async def logout(request: web.Request) -> web.Response:
    """`npm logout`: revoke the token in the path (already gone is fine)."""
    token = request.match_info["token"]
    db = request.app[DATABASE]
    record = await lookup_token(db, token)
    if record is not None:
        identity = identity_of(request)
        if identity is not None and identity.user != record["user"]:
            raise Forbidden("you can only revoke your own tokens")
        if identity is not None and identity.token_key != record["key"]:
            require_grant(identity, "user", identity.user, write=True)
        await revoke_token(db, str(record["user"]), str(record["key"]))
        caches(request.app).forget_token(token_hash(token))
    return json_response({"ok": True})


# -- profile ----------------------------------------------------------------


async def get_profile(request: web.Request) -> web.Response:
    identity = require_user(request)
    require_grant(identity, "user", identity.user, write=False)
    user = await get_user(request.app[DATABASE], identity.user)
    if user is None:
        raise Unauthorized("the user of this token no longer exists")
    return json_response(profile_view(user))


async def set_profile(request: web.Request) -> web.Response:
    """`npm profile set`: email, the public fields, and the password ({old, new})."""
    identity = require_user(request)
    require_grant(identity, "user", identity.user, write=True)
    body = await read_object(request)
    db = request.app[DATABASE]
    if "tfa" in body:
        return json_response(await set_two_factor(request, identity, body["tfa"]))
    await require_otp(request, identity, purpose="profile")
    changes: dict[str, Any] = {}
    for field in ("email", *PROFILE_FIELDS):
        if field in body:
            changes[field] = optional_str(body, field)
    check_email(changes.get("email"))
    new_password = None
    password = body.get("password")
    if password is not None:
        if not isinstance(password, dict) or not all(
            isinstance(password.get(k), str) for k in ("old", "new")
        ):
            raise BadRequest("password must be {old, new}")
        if await checked_password(request, "password", identity.user, password["old"]) is None:
            raise Unauthorized("the current password is wrong")
        check_new_password(password["new"])
        new_password = password["new"]
    user = await update_user(db, identity.user, changes, password=new_password)
    if new_password is not None:
        caches(request.app).forget_user(identity.user)
    return json_response(profile_view(user))


# -- tokens -----------------------------------------------------------------


async def get_tokens(request: web.Request) -> web.Response:
    identity = require_user(request)
    require_grant(identity, "user", identity.user, write=False)
    objects = [token_view(r) for r in await list_tokens(request.app[DATABASE], identity.user)]
    return json_response({"objects": objects, "total": len(objects), "urls": {}})


def parse_token_options(body: dict[str, Any]) -> dict[str, Any]:
    """readonly, cidr_whitelist, name and expires from a `npm token create` body."""
    readonly = body.get("readonly", False)
    if not isinstance(readonly, bool):
        raise BadRequest("readonly must be true or false")
    # npm 11 sends the permission of a granular token instead of readonly.
    permission = body.get("packages_and_scopes_permission")
    if permission == "read-only":
        readonly = True
    elif permission not in (None, "read-write"):
        raise BadRequest(f"packages_and_scopes_permission {permission!r} is not supported")
    for field in GRANULAR_FIELDS:
        if body.get(field):
            raise BadRequest(
                "tokens limited to packages, scopes or orgs are not supported yet;"
                " create the token without --packages, --scopes or --orgs"
            )
    try:
        cidrs = parse_cidrs(body.get("cidr_whitelist"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if len(cidrs) > MAX_CIDRS:
        raise BadRequest(f"at most {MAX_CIDRS} CIDR entries")
    try:
        expires = parse_expires(body.get("expires"), time.time())
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    bypass = body.get("bypass_2fa", False)
    if not isinstance(bypass, bool):
        raise BadRequest("bypass_2fa must be true or false")
    return {
        "readonly": readonly, "cidr_whitelist": cidrs, "name": optional_str(body, "name"),
        "expires": expires, "bypass_2fa": bypass,
    }


def parse_token_grants(body: dict[str, Any]) -> tuple[Grant, ...] | None:
    """The `grants` of a token create body (tarhold's extension); 400 with the problem."""
    grants = body.get("grants")
    if grants is None:
        return None
    if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
        raise BadRequest("grants must be a list of strings like pkg:read+write=@acme/*")
    if len(grants) > MAX_GRANTS:
        raise BadRequest(f"at most {MAX_GRANTS} grants")
    try:
        return parse_grants(grants)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def post_token(request: web.Request) -> web.Response:
    """`npm token create`: the password again, then a new token shown once."""
    identity = require_user(request)
    require_grant(identity, "user", identity.user, write=True)
    body = await read_object(request)
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise BadRequest("password is required")
    options = parse_token_options(body)
    grants = parse_token_grants(body)
    options["grants"] = format_grants(grants) if grants is not None else None
    options = within_parent(identity, options)
    db = request.app[DATABASE]
    if await checked_password(request, "token", identity.user, password) is None:
        raise Unauthorized("invalid password")
    if options["bypass_2fa"] and not state_of(await get_user(db, identity.user)).enabled:
        raise Forbidden("a --bypass-2fa token needs two-factor auth on: npm profile enable-2fa auth-and-writes")
    # A token that skips the second factor is itself made with one.
    await require_otp(request, identity, purpose="profile" if options["bypass_2fa"] else "token")
    token, record = await create_token(db, identity.user, **options)
    return json_response({**token_view(record), "token": token}, 201)


async def delete_token(request: web.Request) -> web.Response:
    """`npm token revoke`: by key, or by the token itself; 204."""
    identity = require_user(request)
    db = request.app[DATABASE]
    value = request.match_info["key"]
    key = None
    if TOKEN_KEY.fullmatch(value) and await get_token_record(db, identity.user, value):
        key = value
    else:
        found = await lookup_token(db, value)
        if found is not None and found["user"] == identity.user:
            key = str(found["key"])
    if key is None:
        raise NotFoundError("no such token")
    if key != identity.token_key:
        # Any token may revoke itself, even a read-only or grant-limited one.
        require_grant(identity, "user", identity.user, write=True)
    record = await revoke_token(db, identity.user, key)
    if record is not None:
        caches(request.app).forget_token(str(record["hash"]))
    return web.Response(status=204)


def install(app: web.Application) -> None:
    """Add the auth middleware and every account, token and login route to `app`.

    Call before the app starts (its middleware list freezes then); a second
    call is a no-op.
    """
    if auth_middleware in app.middlewares:
        return
    app.middlewares.append(auth_middleware)
    caches(app)
    app.cleanup_ctx.append(finish_last_used)
    router = app.router
    router.add_put(USER_PATH, put_user)
    router.add_put(USER_PATH + "/-rev/{rev}", put_user)
    router.add_get(USER_PATH, get_user_document)
    router.add_get("/-/whoami", whoami)
    router.add_delete("/-/user/token/{token}", logout)
    router.add_get("/-/npm/v1/user", get_profile)
    router.add_post("/-/npm/v1/user", set_profile)
    router.add_get("/-/npm/v1/tokens", get_tokens)
    router.add_post("/-/npm/v1/tokens", post_token)
    router.add_delete("/-/npm/v1/tokens/token/{key}", delete_token)
    setup_web_login(app)


async def finish_last_used(app: web.Application) -> AsyncIterator[None]:
    """Let pending `last_used` writes finish before the database closes (registered after it)."""
    yield
    await caches(app).last_used.drain()
