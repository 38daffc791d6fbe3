"""Who is asking: bearer tokens and Basic credentials, and what a principal may do.

`auth_middleware` sets `request["identity"]` (an Identity, or None for an
anonymous request) and `request["user"]` (the name the access log prints).
Package handlers then ask registry.http.access (one decision for every
package action); account handlers call `require_user` and `require_grant`
(the token's own limits: read-only, grants). Identity, `is_allowed` and
`grant_allows` live in registry.domain.access and are re-exported here.

A bearer token is checked, in this order: known (401), not expired (401
"token expired"), used from its CIDR whitelist (403; X-Forwarded-For only as
`auth.trust_forwarded_for` allows), within its rate limit (429 with
Retry-After). Its `last_used` is then recorded, coalesced (ratelimit.py).

Lookups are cached per app instance, never negatively:
- a token for TOKEN_TTL seconds, so a token revoked on any instance stops
  working everywhere within 5 s;
- a verified user/password pair for PASSWORD_TTL seconds, so scrypt does not
  run on every request of a client using `_auth` in its .npmrc.

Nothing here logs a token, a password or an Authorization header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cachetools import TTLCache

from registry.domain.access import (
    LOG_IN,
    Identity,
    TrustedScope,
    grant_allows,
    grant_refusal,
)
from registry.domain.access import (
    is_allowed as is_allowed,  # re-exported: callers and tests import it from here
)
from registry.domain.cidrs import ip_allowed
from registry.domain.errors import Forbidden, RegistryError, Unauthorized
from registry.domain.grants import stored_grants
from registry.domain.ratelimit import LastUsedRecorder, RateLimiter
from registry.domain.users import lookup_token, token_hash
from registry.http.appkeys import CONFIG, DATABASE
from registry.http.clients import client_address
from registry.http.sign_in import checked_password

TOKEN_TTL = 4.0
PASSWORD_TTL = 60.0
CACHE_SIZE = 10_000

INVALID_TOKEN = "invalid, expired or revoked token; log in again with `npm login`"
TOKEN_EXPIRED = "token expired; create a new one with `npm token create`, or log in again with `npm login`"
BAD_CREDENTIALS = "bad username or password"

# Never authenticated: load balancers and `npm ping` hit these constantly.
UNAUTHENTICATED_PATHS = frozenset({"/-/ping", "/health", "/-/metrics"})
# The OIDC exchange: its bearer is a CI job's id token, which the handler checks (routes_trust.py).
EXCHANGE_PATH = re.compile(r"^/-/npm/v1/oidc/token/exchange/package/[^/]+$")
# Where stale credentials must not get in the way: logging in again (npm
# sends the old token along), logging out, and the web login flow.
LENIENT = re.compile(
    r"^/-/user/org\.couchdb\.user:[^/]+(/-rev/[^/]+)?$|^/-/user/token/[^/]+$|^/-/v1/(login|done)(/|$)"
)
# Paths whose last segment may be a token in clear (npm logout, `npm token revoke <token>`).
SECRET_PATHS = re.compile(r"^(/-/user/token/|/-/npm/v1/tokens/token/)[^/]+$")
TOKEN_KEY = re.compile(r"[0-9a-f]{32}")
# The web UI's session cookie: it holds a read-only tarhold token (web.py).
SESSION_COOKIE = "tarhold_session"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class AuthCaches:
    """Per-instance caches of successful lookups (never of failures)."""

    tokens: TTLCache[str, dict[str, Any]] = field(
        default_factory=lambda: TTLCache(maxsize=CACHE_SIZE, ttl=TOKEN_TTL)
    )
    passwords: TTLCache[tuple[str, str], bool] = field(
        default_factory=lambda: TTLCache(maxsize=CACHE_SIZE, ttl=PASSWORD_TTL)
    )
    # Keys the password cache, so memory never holds a plain hash of a password.
    pepper: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    limiter: RateLimiter = field(default_factory=RateLimiter)
    last_used: LastUsedRecorder = field(default_factory=LastUsedRecorder)

    def password_key(self, user: str, password: str) -> tuple[str, str]:
        return user, hmac.new(self.pepper, password.encode(), hashlib.sha256).hexdigest()

    def forget_token(self, digest: str) -> None:
        self.tokens.pop(digest, None)

    def forget_user(self, user: str) -> None:
        """Drop a user's cached passwords (after a password change on this instance)."""
        for key in [k for k in self.passwords if k[0] == user]:
            self.passwords.pop(key, None)


AUTH_CACHES = web.AppKey("auth_caches", AuthCaches)


def caches(app: web.Application) -> AuthCaches:
    """The app's AuthCaches, created on first use."""
    if AUTH_CACHES not in app:
        app[AUTH_CACHES] = AuthCaches()
    return app[AUTH_CACHES]


async def authenticate(request: web.Request) -> Identity | None:
    """The Identity the request's Authorization header proves; None when it has none.

    Raises Unauthorized for credentials that do not check out, Forbidden for
    a token used from outside its CIDR whitelist.
    """
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return await _bearer(request, value)
    if scheme == "basic":
        return await _basic(request, value)
    raise Unauthorized("unsupported authorization scheme; use a token or a username and password")


async def _bearer(request: web.Request, token: str) -> Identity:
    if not token:
        raise Unauthorized(INVALID_TOKEN)
    state = caches(request.app)
    digest = token_hash(token)
    record = state.tokens.get(digest)
    if record is None:
        record = await lookup_token(request.app[DATABASE], token)
        if record is None:
            raise Unauthorized(INVALID_TOKEN)
        state.tokens[digest] = record
    expires = record.get("expires")
    if expires is not None and expires <= time.time():
        raise Unauthorized(TOKEN_EXPIRED)
    cidrs = record.get("cidr_whitelist")
    if cidrs and not ip_allowed(client_address(request), cidrs):
        raise Forbidden("this token is not allowed from your IP address")
    user, key = str(record["user"]), str(record["key"])
    per_minute = token_rate_limit(record, request.app[CONFIG].auth.rate_limit)
    if per_minute is not None:
        state.limiter.check(key, per_minute)
    state.last_used.seen(request.app[DATABASE], user, key)
    grants = record.get("grants")
    trusted = record.get("trusted")
    return Identity(
        user=user,
        token_key=key,
        readonly=bool(record.get("readonly")),
        grants=stored_grants(tuple(grants)) if grants is not None else None,
        expires=int(expires) if isinstance(expires, (int, float)) else None,
        cidrs=tuple(cidrs or ()),
        rate_limit=own_rate_limit(record),
        bypass_2fa=bool(record.get("bypass_2fa")),
        trusted=TrustedScope(
            package=str(trusted["package"]), provider=str(trusted["type"]), config=str(trusted["config"]),
            permissions=frozenset(trusted.get("permissions") or ()),
        ) if isinstance(trusted, dict) else None,
    )


def own_rate_limit(record: dict[str, Any]) -> int | None:
    """A token's own `rate_limit` (requests per minute), when it has a valid one."""
    own = record.get("rate_limit")
    if isinstance(own, int) and not isinstance(own, bool) and own > 0:
        return own
    return None


def token_rate_limit(record: dict[str, Any], default: int | None) -> int | None:
    """Requests per minute for a token: its own `rate_limit` when it has one, else the config's."""
    own = own_rate_limit(record)
    return own if own is not None else default


def parse_basic(value: str) -> tuple[str, str]:
    """(user, password) from a Basic credential; raises Unauthorized when malformed."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed basic authorization header") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user or not password:
        raise Unauthorized("malformed basic authorization header")
    return user, password


async def _basic(request: web.Request, value: str) -> Identity:
    user, password = parse_basic(value)
    cache = caches(request.app)
    key = cache.password_key(user, password)
    if key not in cache.passwords:
        if await checked_password(request, "basic", user, password) is None:
            raise Unauthorized(BAD_CREDENTIALS)
        cache.passwords[key] = True
    return Identity(user=user)


def log_path(path: str) -> str:
    """The request path as the access log may print it: tokens in a path are masked."""
    match = SECRET_PATHS.match(path)
    if match is None:
        return path
    last = path[match.end(1):]
    if match.group(1) == "/-/npm/v1/tokens/token/" and TOKEN_KEY.fullmatch(last):
        return path
    return match.group(1) + "***"


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Set request["identity"] and request["user"], or refuse bad credentials."""
    request["log_path"] = log_path(request.path)
    if request.path in UNAUTHENTICATED_PATHS or EXCHANGE_PATH.match(request.path):
        request["identity"] = None
        return await handler(request)
    try:
        identity = await authenticate(request)
    except RegistryError:
        if not LENIENT.match(request.path):
            raise
        identity = None
    if identity is None and "Authorization" not in request.headers and is_web_page_read(request):
        identity = await session_identity(request)
    request["identity"] = identity
    request["user"] = identity.user if identity else None
    return await handler(request)


def is_web_page_read(request: web.Request) -> bool:
    """A GET or HEAD of the web UI (`/`, `/-/web/...`): the only requests the session cookie counts for.

    A browser sends cookies on cross-site requests too, so a cookie honoured
    by the npm API (or by any write) would let other sites act as the user.
    """
    if request.method not in ("GET", "HEAD"):
        return False
    path = request.path
    prefix = request.app[CONFIG].url_prefix
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix):] or "/"
    return path == "/" or path.startswith("/-/web/")


async def session_identity(request: web.Request) -> Identity | None:
    """The Identity of the web session cookie (a read-only tarhold token, see web.py); None when stale."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    try:
        return await _bearer(request, token)
    except RegistryError:
        return None  # expired or revoked: the page shows the visitor as signed out


def identity_of(request: web.Request) -> Identity | None:
    """The Identity auth_middleware found for the request (None: anonymous)."""
    identity = request.get("identity")
    return identity if isinstance(identity, Identity) else None


def require_user(request: web.Request) -> Identity:
    """The request's Identity; 401 "authentication required" when anonymous.

    Account, token, admin and settings requests all start here, so a token
    from a trusted-publishing exchange is refused here: it only publishes.
    """
    identity = identity_of(request)
    if identity is None:
        raise Unauthorized(LOG_IN)
    if identity.trusted is not None:
        raise Forbidden(identity.trusted.refusal("act on accounts, tokens or settings"))
    return identity


def require_grant(
    identity: Identity | None, kind: str, target: str, *, write: bool, anonymous_ok: bool = False
) -> None:
    """403 with a message npm prints when the token may not do this (see grant_allows).

    For the user's own account and tokens (routes_auth); package access goes
    through registry.http.access, which asks registry.domain.access.
    """
    if not grant_allows(identity, kind, target, write=write, anonymous_ok=anonymous_ok):
        raise Forbidden(grant_refusal(identity, kind, target, write=write))
