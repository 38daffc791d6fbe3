"""User and token administration, shared by `tarhold user|token` and the `/-/tarhold/` API.

Every function here works on a RegistryDatabase and raises RegistryErrors
(400 for bad input, 404 for a missing user or token, 409 for a name that is
taken or a change that would leave the registry without an admin), so the
CLI maps them to exit codes and the HTTP API renders them as `{"error": ...}`.

The admin bootstrap from the environment lives in bootstrap.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from registry.domain.access import Identity
from registry.domain.cidrs import parse_cidrs
from registry.domain.clock import iso, now_iso
from registry.domain.errors import BadRequest, ConflictError, NotFoundError
from registry.domain.grants import format_grants, parse_expires, parse_grants
from registry.domain.token_limits import within_parent
from registry.domain.users import (
    PROFILE_SK,
    RETIRED_PK,
    USERS_PK,
    check_email,
    check_new_password,
    create_token,
    create_user,
    get_token_record,
    get_user,
    list_tokens,
    revoke_token,
    update_user,
    user_pk,
    valid_user_name,
)
from storage.base import ConfigError, Conflict, NotFound, RegistryDatabase
from storage.options import parse_duration

LOG = logging.getLogger(__name__)

MAX_TOKEN_DAYS = 3650
MAX_CIDRS = 50
MAX_GRANTS = 100
EXPIRES_FORMS = "a lifetime like 30d, 12h or 1w, a number of days, or a date like 2030-01-31"
MAX_RATE_LIMIT = 1_000_000
MAX_TOKEN_NAME = 256
PROFILE_READS = 16  # concurrent profile reads when listing users
UNSET: Any = object()


# -- users -------------------------------------------------------------------


def check_user_name(name: str) -> None:
    if not valid_user_name(name):
        raise BadRequest(f"invalid user name {name!r}: use 1-64 lowercase letters, digits, '-', '_' or '.'")


def user_view(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A user as the admin API and `tarhold user list` show it: never the password hash."""
    return {
        "name": profile["name"], "email": profile.get("email") or None,
        "admin": bool(profile.get("admin")), "created": profile.get("created"),
        "updated": profile.get("updated", profile.get("created")),
    }


async def user_names(db: RegistryDatabase) -> list[str]:
    """Every user name, in name order: one query on the `USERS` index partition."""
    return [name async for name, _ in db.query(USERS_PK)]


async def profiles(db: RegistryDatabase, names: Iterable[str]) -> list[dict[str, Any]]:
    """The profiles of `names` (missing ones skipped), read a few at a time."""
    gate = asyncio.Semaphore(PROFILE_READS)

    async def read(name: str) -> dict[str, Any] | None:
        async with gate:
            return await get_user(db, name)

    found = await asyncio.gather(*(read(name) for name in names))
    return [profile for profile in found if profile is not None]


async def list_users(db: RegistryDatabase) -> list[dict[str, Any]]:
    return [user_view(p) for p in await profiles(db, await user_names(db))]


async def admin_names(db: RegistryDatabase) -> list[str]:
    """The names of every admin (reads each profile: admin counts are rare operations)."""
    return [str(p["name"]) for p in await profiles(db, await user_names(db)) if p.get("admin")]


async def add_user(
    db: RegistryDatabase, name: str, password: str, *, email: str | None = None, admin: bool = False
) -> dict[str, Any]:
    """Create a user (an admin when `admin`); 409 when the name is taken."""
    check_user_name(name)
    check_new_password(password)
    check_email(email)
    try:
        profile = await create_user(db, name, password, email, admin=admin)
    except Conflict:
        raise ConflictError(f"user {name} already exists") from None
    try:  # an admin giving a removed user's name out again frees it
        await db.delete(RETIRED_PK, name)
    except NotFound:
        pass
    return user_view(profile)


async def _refuse_last_admin(db: RegistryDatabase, name: str) -> None:
    if [other for other in await admin_names(db) if other != name] == []:
        raise ConflictError(
            f"{name} is the only admin; make another user an admin first"
            " (or the registry has nobody to administer it)"
        )


async def change_user(
    db: RegistryDatabase,
    name: str,
    *,
    password: str | None = None,
    email: Any = UNSET,
    admin: bool | None = None,
) -> dict[str, Any]:
    """Set a user's password, email (None clears it) or admin flag; 404 when there is no such user."""
    profile = await get_user(db, name)
    if profile is None:
        raise NotFoundError(f"no such user: {name}")
    changes: dict[str, Any] = {}
    if email is not UNSET:
        check_email(email)
        changes["email"] = email
    if admin is not None:
        if profile.get("admin") and not admin:
            await _refuse_last_admin(db, name)
        changes["admin"] = admin
    if password is not None:
        check_new_password(password)
    try:
        updated = await update_user(db, name, changes, password=password)
    except NotFound:
        raise NotFoundError(f"no such user: {name}") from None
    LOG.info("changed user %s (%s)", name, ", ".join(sorted([*changes, *(["password"] if password else [])])))
    return user_view(updated)


async def remove_user(db: RegistryDatabase, name: str) -> list[dict[str, Any]]:
    """Revoke every token of a user, then delete the user; the revoked token records.

    Tokens go first: once they are gone nothing the user held still works,
    even if deleting the profile fails halfway.
    """
    profile = await get_user(db, name)
    if profile is None:
        raise NotFoundError(f"no such user: {name}")
    if profile.get("admin"):
        await _refuse_last_admin(db, name)
    revoked = []
    for record in await list_tokens(db, name):
        gone = await revoke_token(db, name, str(record["key"]))
        if gone is not None:
            revoked.append(gone)
    # Reserved first: the name may still be a maintainer of packages, and must
    # not be free for a moment in which someone else could register it.
    await db.put(RETIRED_PK, name, {"name": name, "removed": now_iso()})
    for pk, sk in ((user_pk(name), PROFILE_SK), (USERS_PK, name)):
        try:
            await db.delete(pk, sk)
        except NotFound:
            pass
    LOG.info("removed user %s and %d tokens", name, len(revoked))
    return revoked


# -- tokens ------------------------------------------------------------------


def mask(prefix: str) -> str:
    return f"{prefix}…"


def token_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A token record as the admin API and `tarhold token list` show it: masked, never the hash."""
    expires = record.get("expires")
    return {
        "key": record["key"], "user": record["user"], "name": record.get("name") or None,
        "token": mask(str(record.get("token_prefix", ""))),
        "readonly": bool(record.get("readonly")), "grants": record.get("grants"),
        "cidr_whitelist": record.get("cidr_whitelist") or None,
        "rate_limit": record.get("rate_limit"),
        "created": record.get("created"), "last_used": record.get("last_used"),
        "expires": iso(expires) if expires is not None else None,
        "expired": expires is not None and expires <= time.time(),
    }


async def list_all_tokens(db: RegistryDatabase, user: str | None = None) -> list[dict[str, Any]]:
    """The token views of one user (404 when unknown), or of every user."""
    if user is not None:
        if await get_user(db, user) is None:
            raise NotFoundError(f"no such user: {user}")
        names = [user]
    else:
        names = await user_names(db)
    views: list[dict[str, Any]] = []
    for name in names:
        views.extend(token_view(r) for r in await list_tokens(db, name))
    return views


def parse_expiry(value: Any, now: float | None = None) -> int | None:
    """Epoch seconds from a lifetime (`30d`, `12h`, `1w`), a whole number of days (as npm
    sends), or the moment itself (`2030-01-31`, as `/-/npm/v1/tokens` takes it); None stays None."""
    if value is None:
        return None
    now = time.time() if now is None else now
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadRequest(f"expires must be {EXPIRES_FORMS}")
    if isinstance(value, int):
        seconds = float(value) * 86400
    else:
        try:
            seconds = parse_duration("expires", value)
        except ConfigError:
            try:
                return parse_expires(value, now)
            except ValueError:
                raise BadRequest(f"expires {value!r} is not {EXPIRES_FORMS}") from None
    if not 60 <= seconds <= MAX_TOKEN_DAYS * 86400:
        raise BadRequest(f"expires must be between 1 minute and {MAX_TOKEN_DAYS} days")
    return int(now + seconds)


def check_token_options(
    *,
    grants: Any = None,
    readonly: Any = False,
    cidr_whitelist: Any = None,
    rate_limit: Any = None,
    name: Any = None,
) -> dict[str, Any]:
    """Validated token options; 400 naming the first bad one."""
    options: dict[str, Any] = {}
    if grants is not None:
        if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
            raise BadRequest("grants must be a list of strings like pkg:read=@acme/*")
        if len(grants) > MAX_GRANTS:
            raise BadRequest(f"at most {MAX_GRANTS} grants")
        try:
            options["grants"] = format_grants(parse_grants(grants))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    if not isinstance(readonly, bool):
        raise BadRequest("readonly must be true or false")
    options["readonly"] = readonly
    try:
        cidrs = parse_cidrs(cidr_whitelist)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if len(cidrs) > MAX_CIDRS:
        raise BadRequest(f"at most {MAX_CIDRS} CIDR entries")
    options["cidr_whitelist"] = cidrs or None
    if rate_limit is not None and (
        isinstance(rate_limit, bool) or not isinstance(rate_limit, int) or not 1 <= rate_limit <= MAX_RATE_LIMIT
    ):
        raise BadRequest(f"rate_limit must be a whole number of requests per minute, 1 to {MAX_RATE_LIMIT}")
    options["rate_limit"] = rate_limit
    if name is not None and (not isinstance(name, str) or len(name) > MAX_TOKEN_NAME):
        raise BadRequest(f"name must be a string of at most {MAX_TOKEN_NAME} characters")
    options["name"] = name or None
    return options


async def issue_token(
    db: RegistryDatabase, user: str, *, expires: Any = None, parent: Identity | None = None, **options: Any
) -> tuple[str, dict[str, Any]]:
    """A new token for an existing user: (the token, shown once; its view).

    `options` as check_token_options takes them; `expires` as parse_expiry.
    `parent`, the identity of an API request, bounds the new token (403 for
    more than its own token has); the CLI passes none.
    """
    checked = check_token_options(**options)
    checked["expires"] = parse_expiry(expires)
    if parent is not None:
        checked = within_parent(parent, checked)
    if await get_user(db, user) is None:
        raise NotFoundError(f"no such user: {user}")
    token, record = await create_token(db, user, **checked)
    return token, token_view(record)


async def find_token(db: RegistryDatabase, key: str, user: str | None = None) -> dict[str, Any]:
    """A token record by key, of `user` or of whichever user holds it; 404 otherwise."""
    if not re.fullmatch(r"[0-9a-f]{32}", key):
        raise BadRequest(f"invalid token key {key!r}: token list shows 32 hex digits")
    for name in [user] if user is not None else await user_names(db):
        record = await get_token_record(db, name, key)
        if record is not None:
            return record
    raise NotFoundError(f"no token with key {key}" + (f" for user {user}" if user else ""))


async def revoke(db: RegistryDatabase, key: str, user: str | None = None) -> dict[str, Any]:
    """Revoke a token by key; the revoked record (its `hash` lets callers drop caches)."""
    record = await find_token(db, key, user)
    gone = await revoke_token(db, str(record["user"]), key)
    if gone is None:
        raise NotFoundError(f"no token with key {key}")
    return gone
