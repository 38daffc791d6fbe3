"""The first admin, from the environment; never a built-in default credential.

- `TARHOLD_ADMIN_PASSWORD`: when no admin exists yet, create the user
  `TARHOLD_ADMIN_USER` (default `admin`) with this password, as an admin.
- `TARHOLD_ADMIN_TOKEN`: a token the operator chose, registered (hashed) as
  a full-rights token of that admin when it is not registered yet. Alone it
  creates the admin too, with a random password nobody knows (set one with
  `tarhold user passwd`).

Safe to run on every start of every instance:
- the admin is created with one conditional write (if absent), so instances
  starting at once create it exactly once, and the losers find it made;
- an existing user of that name who is not an admin is never promoted (it
  may be anybody's account, registered with `npm adduser`): the bootstrap
  logs an error and changes nothing;
- when some admin exists, a new one is never created from the environment;
- the token's items have a key derived from the token, so concurrent
  registrations write the same items and one conditional write wins.

A token revoked while it is still in the environment comes back at the
next start: remove it from the environment to retire it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from registry.domain.admin import admin_names
from registry.domain.clock import now_iso
from registry.domain.users import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    TOKEN_PREFIX_CHARS,
    TOKENHASH_PK,
    USERS_PK,
    create_user,
    get_user,
    token_hash,
    token_pk,
    valid_user_name,
)
from registry.http.appkeys import CONFIG, DATABASE
from storage.base import ConfigError, Conflict, NotFound, RegistryDatabase

LOG = logging.getLogger(__name__)

USER_ENV = "TARHOLD_ADMIN_USER"
PASSWORD_ENV = "TARHOLD_ADMIN_PASSWORD"
TOKEN_ENV = "TARHOLD_ADMIN_TOKEN"
DEFAULT_ADMIN = "admin"
MIN_TOKEN = 32
MAX_TOKEN = 512
TOKEN_NAME = "TARHOLD_ADMIN_TOKEN"


@dataclass(frozen=True)
class AdminBootstrap:
    """What the environment asks for: an admin's name, and its password and/or token."""

    user: str
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


def from_environment(environ: Mapping[str, str] | None = None) -> AdminBootstrap | None:
    """The bootstrap the environment asks for, or None; ConfigError naming the bad variable."""
    env = os.environ if environ is None else environ
    password = env.get(PASSWORD_ENV) or None
    token = env.get(TOKEN_ENV) or None
    if password is None and token is None:
        return None
    user = env.get(USER_ENV) or DEFAULT_ADMIN
    if not valid_user_name(user):
        raise ConfigError(USER_ENV, "must be 1-64 lowercase letters, digits, '-', '_' or '.'")
    if password is not None and not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(PASSWORD_ENV, f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if token is not None and (not MIN_TOKEN <= len(token) <= MAX_TOKEN or any(c.isspace() for c in token)):
        raise ConfigError(
            TOKEN_ENV, f"must be {MIN_TOKEN} to {MAX_TOKEN} characters without spaces (e.g. `openssl rand -hex 32`)"
        )
    return AdminBootstrap(user=user, password=password, token=token)


async def bootstrap_admin(db: RegistryDatabase, wanted: AdminBootstrap) -> bool:
    """Create the admin and register its token as the environment asks; whether the admin is usable."""
    name = wanted.user
    profile = await get_user(db, name)
    if profile is None:
        others = await admin_names(db)
        if others:
            LOG.warning(
                "%s/%s ignored: user %s does not exist and the registry already has an admin (%s)",
                PASSWORD_ENV, TOKEN_ENV, name, ", ".join(others),
            )
            return False
        # A token-only bootstrap still needs a password hash: one nobody knows.
        password = wanted.password or secrets.token_urlsafe(32)
        try:
            profile = await create_user(db, name, password, admin=True)
            LOG.warning("created admin user %s from the environment", name)
        except Conflict:
            profile = await get_user(db, name)  # another instance, a moment ago
            if profile is None:
                LOG.error("admin bootstrap: user %s appeared and vanished again; not bootstrapping", name)
                return False
    if not profile.get("admin"):
        LOG.error(
            "admin bootstrap: user %s exists and is not an admin; it is never promoted from the"
            " environment. Use `tarhold user add NAME --admin` or set %s to a new name",
            name, USER_ENV,
        )
        return False
    if wanted.token is not None:
        await register_token(db, name, wanted.token)
    return True


def token_key(token: str) -> str:
    """A stable key for an operator-chosen token: the same on every instance, unrelated to its lookup hash."""
    return hashlib.sha256(b"tarhold-admin-token-key:" + token.encode()).hexdigest()[:32]


async def register_token(db: RegistryDatabase, user: str, token: str) -> None:
    """Register `token` as a full-rights token of `user` unless it is registered already.

    Same items as users.create_token (record first, then the lookup), but
    for a token the operator chose, under a key derived from it.
    """
    digest = token_hash(token)
    try:
        existing = await db.get(TOKENHASH_PK, digest)
    except NotFound:
        existing = None
    if existing is not None:
        if existing.get("user") != user:
            LOG.error("%s is already a token of another user; not registering it for %s", TOKEN_ENV, user)
        return
    key, now = token_key(token), now_iso()
    record: dict[str, Any] = {
        "key": key, "user": user, "name": TOKEN_NAME, "token_prefix": token[:TOKEN_PREFIX_CHARS],
        "readonly": False, "cidr_whitelist": None, "created": now, "updated": now,
        "last_used": None, "grants": None, "expires": None, "rate_limit": None, "hash": digest,
    }
    lookup = {
        "user": user, "key": key, "readonly": False, "cidr_whitelist": None,
        "grants": None, "expires": None, "rate_limit": None,
    }
    for pk, sk, item in ((token_pk(user), key, record), (TOKENHASH_PK, digest, lookup)):
        try:
            await db.put(pk, sk, item, if_absent=True)
        except Conflict:
            pass  # another instance registering the same token: same items
    LOG.warning("registered %s as a token of %s (key %s)", TOKEN_ENV, user, key)


async def has_users(db: RegistryDatabase) -> bool:
    async for _ in db.query(USERS_PK):
        return True
    return False


ADMIN_BOOTSTRAP = web.AppKey("admin_bootstrap", AdminBootstrap)


async def bootstrap_on_startup(app: web.Application) -> None:
    db = app[DATABASE]
    wanted = app.get(ADMIN_BOOTSTRAP)
    if wanted is not None:
        await bootstrap_admin(db, wanted)
    elif not await has_users(db):
        # As the registration setting has it: an open registry's first user signs up.
        max_users = app[CONFIG].auth.max_users
        if max_users is not None and max_users <= 0:
            LOG.warning(
                "no users yet, and registration is closed (auth.max_users: %s): create the first with"
                " `tarhold user add NAME --admin` (with serve's -c or --storage), or start with %s"
                " (and optionally %s) set", max_users, PASSWORD_ENV, TOKEN_ENV,
            )
        else:
            LOG.info(
                "no users yet: registration is open, so the first `npm adduser` signs up; an admin comes"
                " from `tarhold user add NAME --admin` (with serve's -c or --storage) or %s", PASSWORD_ENV,
            )


def setup(app: web.Application, environ: Mapping[str, str] | None = None) -> None:
    """Read the environment now (a bad value stops the start) and bootstrap once storage is open."""
    wanted = from_environment(environ)
    if wanted is not None:
        app[ADMIN_BOOTSTRAP] = wanted
    app.on_startup.append(bootstrap_on_startup)
