"""Users and tokens as items on the RegistryDatabase.

Items (see DESIGN.md):

- `USER#{name}` / `PROFILE`: the user, with an scrypt password hash;
- `USERS` / `{name}`: one index item per user, so counting and listing users
  is one query on one partition, never a table scan;
- `TOKEN#{user}` / `{key}`: a token's public record (what `npm token list` shows);
- `TOKENHASH` / `{sha256 hex of the token}`: the lookup from a presented token.

A token is random, shown once, and stored only as its SHA-256: a leaked
table does not leak working credentials. The TOKEN record keeps the hash too
(never served) so revoking by key can delete the lookup item.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from registry.domain.clock import now_iso
from registry.domain.errors import BadRequest, Forbidden, Unauthorized
from registry.domain.htpasswd import is_foreign
from registry.domain.passwords import (
    check_password,
    dummy_hash,
    hash_password,
    is_outdated,
)
from storage.base import Conflict, NotFound, RegistryDatabase

LOG = logging.getLogger(__name__)

USER_NAME = re.compile(r"[a-z0-9_-][a-z0-9._-]{0,63}")
PROFILE_SK = "PROFILE"
USERS_PK = "USERS"
# Names of removed users: packuments may still list them as maintainers, so
# nobody may register them again through npm adduser (an admin may).
RETIRED_PK = "RETIRED"
TOKENHASH_PK = "TOKENHASH"

TOKEN_BYTES = 32
TOKEN_PREFIX_CHARS = 6
WRITE_RETRIES = 5
EXPIRED_KEPT = 7 * 86400



def user_pk(name: str) -> str:
    return f"USER#{name}"


def token_pk(user: str) -> str:
    return f"TOKEN#{user}"


def valid_user_name(name: str) -> bool:
    """Lowercase letters, digits, `-`, `_`, `.`; 1-64 characters; no leading dot."""
    return USER_NAME.fullmatch(name) is not None


# -- passwords -------------------------------------------------------------


async def create_user(
    db: RegistryDatabase, name: str, password: str, email: str | None = None, *, admin: bool = False
) -> dict[str, Any]:
    """Create a user and its `USERS` index item; raises Conflict when the name is taken.

    When the index write fails the profile is deleted again, so a user is
    never half-created. An admin is one from its very first write: the
    bootstrap (several instances starting at once) must never see an account
    that exists but is not an admin yet.
    """
    now = now_iso()
    user = {
        "name": name, "password": await hash_password(password), "email": email,
        "created": now, "updated": now, "admin": admin,
    }
    ver = await db.put(user_pk(name), PROFILE_SK, user, if_absent=True)
    try:
        await db.put(USERS_PK, name, {"name": name, "created": now})
    except BaseException:
        try:
            await db.delete(user_pk(name), PROFILE_SK, if_ver=ver)
        except (NotFound, Conflict):
            pass
        raise
    LOG.info("created %s %s", "admin" if admin else "user", name)
    return {**user, "ver": ver}


async def get_user(db: RegistryDatabase, name: str) -> dict[str, Any] | None:
    """The user's profile item (with its password hash), or None."""
    try:
        return await db.get(user_pk(name), PROFILE_SK)
    except NotFound:
        return None


async def verify_password(db: RegistryDatabase, name: str, password: str) -> dict[str, Any] | None:
    """The user when `password` is theirs, else None (same cost either way)."""
    user = await get_user(db, name)
    stored = str(user["password"]) if user else await dummy_hash()
    ok = await check_password(password, stored)
    if ok and user is not None and is_outdated(stored):
        try:
            user = await update_user(db, name, {}, password=password)
            LOG.info("rehashed the %s password of %s with the current scrypt cost",
                     "imported" if is_foreign(stored) else "older", name)
        except Exception:  # the login stands; the rehash is retried at the next one
            LOG.exception("could not rehash the imported password of %s", name)
    return user if ok and user is not None else None


async def update_user(
    db: RegistryDatabase, name: str, changes: Mapping[str, Any], *, password: str | None = None
) -> dict[str, Any]:
    """Apply `changes` (and a new password) to a user; read-modify-write on `ver`."""
    new_hash = await hash_password(password) if password is not None else None
    for _ in range(WRITE_RETRIES):
        user = await db.get(user_pk(name), PROFILE_SK)
        updated = {k: v for k, v in user.items() if k != "ver"}
        updated.update(changes)
        if new_hash is not None:
            updated["password"] = new_hash
        updated["updated"] = now_iso()
        try:
            ver = await db.put(user_pk(name), PROFILE_SK, updated, if_ver=user["ver"])
        except Conflict:
            continue
        return {**updated, "ver": ver}
    raise Conflict(f"user {name} kept changing; try again")


async def set_password(db: RegistryDatabase, name: str, password: str) -> None:
    """Replace the user's password; raises NotFound when there is no such user."""
    await update_user(db, name, {}, password=password)
    LOG.info("changed the password of %s", name)


async def count_users(db: RegistryDatabase) -> int:
    """How many users exist: the items of the `USERS` partition."""
    count = 0
    async for _ in db.query(USERS_PK):
        count += 1
    return count


# -- tokens ----------------------------------------------------------------


def token_hash(token: str) -> str:
    """The SHA-256 hex digest a token is stored and looked up under."""
    return hashlib.sha256(token.encode()).hexdigest()


def storage_expiry(expires: int | None) -> int | None:
    """When the database may drop a token's items: a while after the token expires.

    The items outlive the token by EXPIRED_KEPT so that a client still
    presenting it hears "token expired", not "invalid token", and `npm token
    list` shows it as expired before it goes.
    """
    return expires + EXPIRED_KEPT if expires is not None else None


async def create_token(
    db: RegistryDatabase,
    user: str,
    *,
    readonly: bool = False,
    cidr_whitelist: Iterable[str] | None = None,
    name: str | None = None,
    grants: Iterable[str] | None = None,
    expires: int | None = None,
    rate_limit: int | None = None,
    bypass_2fa: bool = False,
) -> tuple[str, dict[str, Any]]:
    """A new token for `user`: (the token, shown once; its public record).

    `grants` None means the user's full rights; `expires` is epoch seconds;
    `rate_limit` requests per minute (None: the config's default).
    The public record is written before the lookup item, so a token that
    works is always one the user can list and revoke.
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    key = secrets.token_hex(16)
    digest = token_hash(token)
    cidrs = list(cidr_whitelist) if cidr_whitelist else None
    grant_list = list(grants) if grants is not None else None
    now = now_iso()
    limits: dict[str, Any] = {
        "readonly": readonly, "cidr_whitelist": cidrs, "grants": grant_list, "expires": expires,
        "rate_limit": rate_limit, "bypass_2fa": bypass_2fa,
    }
    record: dict[str, Any] = {
        "key": key, "user": user, "name": name, "token_prefix": token[:TOKEN_PREFIX_CHARS],
        "created": now, "updated": now, "last_used": None, "hash": digest, **limits,
    }
    lookup = {"user": user, "key": key, **limits}
    kept = storage_expiry(expires)
    await db.put(token_pk(user), key, record, if_absent=True, expires=kept)
    try:
        await db.put(TOKENHASH_PK, digest, lookup, if_absent=True, expires=kept)
    except BaseException:
        try:
            await db.delete(token_pk(user), key)
        except NotFound:
            pass
        raise
    LOG.info("created token %s for %s", key, user)
    return token, record


async def list_tokens(db: RegistryDatabase, user: str) -> list[dict[str, Any]]:
    """The user's unexpired token records, oldest first."""
    records = [item async for _, item in db.query(token_pk(user))]
    return sorted(records, key=lambda r: str(r.get("created", "")))


async def get_token_record(db: RegistryDatabase, user: str, key: str) -> dict[str, Any] | None:
    """One token record of `user` by key, or None."""
    try:
        return await db.get(token_pk(user), key)
    except NotFound:
        return None


async def revoke_token(db: RegistryDatabase, user: str, key: str) -> dict[str, Any] | None:
    """Delete a token's lookup item, then its record; the record, or None if there was none."""
    record = await get_token_record(db, user, key)
    if record is None:
        return None
    # The lookup item first: once it is gone the token stops working, even
    # if deleting the record fails and leaves a listed-but-dead token.
    try:
        await db.delete(TOKENHASH_PK, str(record["hash"]))
    except NotFound:
        pass
    try:
        await db.delete(token_pk(user), key)
    except NotFound:
        pass
    LOG.info("revoked token %s of %s", key, user)
    return record


async def lookup_token(db: RegistryDatabase, token: str) -> dict[str, Any] | None:
    """The lookup item of a presented token; None when unknown or revoked.

    An expired token's item is returned for a while (see storage_expiry): the
    caller checks `expires` and says "token expired".
    """
    try:
        return await db.get(TOKENHASH_PK, token_hash(token))
    except NotFound:
        return None


async def touch_token(db: RegistryDatabase, user: str, key: str, when: str) -> None:
    """Set a token record's `last_used` (a read-modify-write; a revoked token is left alone)."""
    for _ in range(WRITE_RETRIES):
        record = await get_token_record(db, user, key)
        if record is None:
            return
        updated = {k: v for k, v in record.items() if k != "ver"}
        updated["last_used"] = when
        try:
            await db.put(
                token_pk(user), key, updated, if_ver=record["ver"],
                expires=storage_expiry(record.get("expires")),
            )
            return
        except Conflict:
            continue  # changed (or revoked) meanwhile: look again


# -- signing in ------------------------------------------------------------

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_EMAIL = 254


def check_new_password(password: str) -> None:
    """Raise BadRequest when a new password is too short or too long."""
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"password must be at most {MAX_PASSWORD} characters")


def check_email(email: str | None) -> None:
    """Raise BadRequest for an email that cannot be one."""
    if email is not None and (len(email) > MAX_EMAIL or not re.fullmatch(r"[^@\s]+@[^@\s]+", email)):
        raise BadRequest("email is not a valid address")


BAD_LOGIN = "bad username or password"
CLOSED_HINT = "; registration of new users is closed"


async def sign_in(
    db: RegistryDatabase,
    name: str,
    password: str,
    *,
    email: str | None = None,
    max_users: int | None = None,
    create: bool = True,
) -> dict[str, Any]:
    """The user once `password` checks out, registering a new user when allowed.

    An existing user must give their password (401 otherwise). A new name is
    registered when `create` and `max_users` allow (None: no limit; -1:
    registration closed); the limit is checked before the write, so users
    registering at the very same moment may overshoot it by a few. A new name
    that may not register gets the same 401 as a wrong password.
    """
    if len(password) > MAX_PASSWORD:
        raise Unauthorized(BAD_LOGIN)
    user = await get_user(db, name)
    if user is None and create and not await registration_closed(db, max_users):
        if await is_retired(db, name):
            raise Forbidden(f"the name {name} belonged to a removed user and cannot be registered again;"
                            " ask an admin")
        check_new_password(password)
        check_email(email)
        try:
            return await create_user(db, name, password, email)
        except Conflict:
            pass  # registered by someone else a moment ago: verify against it
    # An unknown name is checked against a dummy hash: with registration
    # closed, "no such user" and "wrong password" cost the same and answer
    # the same, so a name cannot be confirmed by guessing.
    verified = await verify_password(db, name, password)
    if verified is None:
        closed = create and await registration_closed(db, max_users)
        raise Unauthorized(BAD_LOGIN + (CLOSED_HINT if closed else ""))
    return verified


async def is_retired(db: RegistryDatabase, name: str) -> bool:
    """Whether `name` belonged to a user an admin removed (see RETIRED_PK)."""
    try:
        await db.get(RETIRED_PK, name)
    except NotFound:
        return False
    return True


async def registration_closed(db: RegistryDatabase, max_users: int | None) -> bool:
    """Whether a new name may not register now (max_users -1, or the maximum reached)."""
    if max_users == -1:
        return True
    return max_users is not None and await count_users(db) >= max_users
