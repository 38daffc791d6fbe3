"""The admin API under `/-/tarhold/`: users and every user's tokens.

Who may call it: a user whose profile says `admin: true`, signed in with a
password or a token. 401 anonymous, 403 anybody else. A token's own limits
still apply:
- a read-only token may only read (GET);
- a token with grants needs `user:read=*` (or `user:read+write=*`) to read
  and `user:read+write=*` to change anything; a grant for one user
  (`~alice`) is not enough, since these endpoints reach every user.

Handlers are thin: the work is in admin.py, shared with `tarhold user|token`.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from registry.domain.admin import (
    UNSET,
    add_user,
    change_user,
    check_user_name,
    issue_token,
    list_all_tokens,
    list_users,
    remove_user,
    revoke,
    user_view,
)
from registry.domain.errors import BadRequest, Forbidden, NotFoundError, Unauthorized
from registry.domain.users import get_user
from registry.http.appkeys import DATABASE
from registry.http.auth import Identity, caches, grant_allows, require_user
from registry.http.bodies import read_object
from registry.http.otp import require_otp

PREFIX = "/-/tarhold"
USER_FIELDS = {"name", "password", "email", "admin"}
USER_CHANGE_FIELDS = {"password", "email", "admin"}
TOKEN_FIELDS = {"user", "grants", "readonly", "cidr_whitelist", "expires", "rate_limit", "name"}


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def require_admin(request: web.Request) -> Identity:
    """The admin making the request; 401 when anonymous, 403 for anyone else."""
    identity = require_user(request)
    profile = await get_user(request.app[DATABASE], identity.user)
    if profile is None:
        raise Unauthorized("the user of these credentials no longer exists")
    if not profile.get("admin"):
        raise Forbidden("the admin API is for admins only")
    write = request.method not in {"GET", "HEAD"}
    # `user:...=*` exactly: the admin API reaches every user, so `~name` grants fall short.
    if not grant_allows(identity, "user", "*", write=write):
        needed = "user:read+write=*" if write else "user:read=*"
        raise Forbidden(f"this token may not {'change' if write else 'read'} users and tokens (it needs {needed})")
    if write:
        # Changing users, tokens or the policy is a write like making a token:
        # under auth-and-writes it takes the admin's one-time password.
        await require_otp(request, identity, purpose="token")
    return identity


def optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false")
    return value


def optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value or None


def path_user(request: web.Request, key: str = "name") -> str:
    name = request.match_info[key]
    check_user_name(name)
    return name


# -- users ---------------------------------------------------------------------


async def get_users(request: web.Request) -> web.Response:
    await require_admin(request)
    users = await list_users(request.app[DATABASE])
    return json_response({"users": users, "total": len(users)})


async def post_user(request: web.Request) -> web.Response:
    await require_admin(request)
    body = await read_object(request, allowed=USER_FIELDS)
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not name:
        raise BadRequest("name is required")
    if not isinstance(password, str) or not password:
        raise BadRequest("password is required")
    user = await add_user(
        request.app[DATABASE], name, password,
        email=optional_text(body, "email"), admin=bool(optional_bool(body, "admin")),
    )
    return json_response(user, 201)


async def get_one_user(request: web.Request) -> web.Response:
    await require_admin(request)
    name = path_user(request)
    profile = await get_user(request.app[DATABASE], name)
    if profile is None:
        raise NotFoundError(f"no such user: {name}")
    return json_response(user_view(profile))


async def patch_user(request: web.Request) -> web.Response:
    await require_admin(request)
    name = path_user(request)
    body = await read_object(request, allowed=USER_CHANGE_FIELDS)
    password = body.get("password")
    if password is not None and (not isinstance(password, str) or not password):
        raise BadRequest("password must be a non-empty string")
    user = await change_user(
        request.app[DATABASE], name, password=password,
        email=optional_text(body, "email") if "email" in body else UNSET,
        admin=optional_bool(body, "admin"),
    )
    if password is not None:
        caches(request.app).forget_user(name)
    return json_response(user)


async def delete_user(request: web.Request) -> web.Response:
    await require_admin(request)
    name = path_user(request)
    revoked = await remove_user(request.app[DATABASE], name)
    cache = caches(request.app)
    for record in revoked:
        cache.forget_token(str(record["hash"]))
    cache.forget_user(name)
    return json_response({"ok": True, "name": name, "revoked_tokens": len(revoked)})


# -- tokens --------------------------------------------------------------------


async def get_tokens(request: web.Request) -> web.Response:
    await require_admin(request)
    user = request.query.get("user") or None
    if user is not None:
        check_user_name(user)
    tokens = await list_all_tokens(request.app[DATABASE], user)
    return json_response({"tokens": tokens, "total": len(tokens)})


async def post_token(request: web.Request) -> web.Response:
    identity = await require_admin(request)
    body = await read_object(request, allowed=TOKEN_FIELDS)
    user = body.get("user")
    if not isinstance(user, str) or not user:
        raise BadRequest("user is required")
    check_user_name(user)
    token, view = await issue_token(
        request.app[DATABASE], user, expires=body.get("expires"), grants=body.get("grants"),
        readonly=body.get("readonly", False), cidr_whitelist=body.get("cidr_whitelist"),
        rate_limit=body.get("rate_limit"), name=body.get("name"), parent=identity,
    )
    return json_response({**view, "token": token}, 201)


async def delete_token(request: web.Request) -> web.Response:
    await require_admin(request)
    user = path_user(request, "user")
    record = await revoke(request.app[DATABASE], request.match_info["key"], user)
    caches(request.app).forget_token(str(record["hash"]))
    return json_response({"ok": True, "user": user, "key": record["key"]})


def setup(app: web.Application) -> None:
    """Register the admin routes (before the package catch-all)."""
    router = app.router
    router.add_get(f"{PREFIX}/users", get_users)
    router.add_post(f"{PREFIX}/users", post_user)
    router.add_get(f"{PREFIX}/users/{{name}}", get_one_user)
    router.add_patch(f"{PREFIX}/users/{{name}}", patch_user)
    router.add_delete(f"{PREFIX}/users/{{name}}", delete_user)
    router.add_get(f"{PREFIX}/tokens", get_tokens)
    router.add_post(f"{PREFIX}/tokens", post_token)
    router.add_delete(f"{PREFIX}/tokens/{{user}}/{{key}}", delete_token)
