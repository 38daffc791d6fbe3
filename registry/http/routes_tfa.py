"""`npm profile enable-2fa` / `disable-2fa` over `POST /-/npm/v1/user`, as npm's profile command sends them.

1. `{"tfa": {"password", "mode"}}` with 2FA off (or pending): enrolment
   starts; the answer is `{"tfa": "otpauth://totp/..."}`, which npm shows as
   a QR code and as the secret.
2. `{"tfa": ["123456"]}`: the first code confirms it; the answer lists the
   recovery codes (`{"tfa": ["abcd1234-...", ...]}`), shown this once.
3. `{"tfa": {"password", "mode"}}` with 2FA on: the mode changes (a code
   is needed); `{"tfa": {"password", "mode": "disable"}}` turns it off (a
   code is needed unless it was only pending).

The password is checked behind the sign-in throttle every time.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from registry.domain.access import Identity
from registry.domain.errors import BadRequest, Unauthorized
from registry.domain.two_factor import (
    MODES,
    confirm,
    disable,
    set_mode,
    start,
    state_of,
)
from registry.domain.users import get_user
from registry.http.appkeys import DATABASE, SECRET
from registry.http.otp import require_otp
from registry.http.sign_in import checked_password

LOG = logging.getLogger(__name__)
MAX_CODE = 64


async def set_two_factor(request: web.Request, identity: Identity, tfa: Any) -> dict[str, Any]:
    """Apply a profile body's `tfa`; the `tfa` value npm reads back."""
    db, secret = request.app[DATABASE], request.app[SECRET]
    name = identity.user
    if isinstance(tfa, list):
        if len(tfa) != 1 or not isinstance(tfa[0], str) or len(tfa[0]) > MAX_CODE:
            raise BadRequest("tfa must be [one-time password] to finish setting up two-factor auth")
        codes = await confirm(db, name, tfa[0], secret)
        LOG.warning("two-factor auth enabled for %s", name, extra={"user": name})
        return {"tfa": codes}
    if not isinstance(tfa, dict) or not isinstance(tfa.get("password"), str):
        raise BadRequest('tfa must be {"password": ..., "mode": "auth-and-writes" | "auth-only" | "disable"}')
    mode = tfa.get("mode")
    if mode not in (*MODES, "disable"):
        raise BadRequest(f"tfa.mode must be auth-and-writes, auth-only or disable, not {mode!r}")
    if await checked_password(request, "password", name, tfa["password"]) is None:
        raise Unauthorized("the password is wrong")
    state = state_of(await get_user(db, name))
    if mode == "disable":
        if state.enabled:
            await require_otp(request, identity, purpose="profile")
        await disable(db, name)
        LOG.warning("two-factor auth disabled for %s", name, extra={"user": name})
        return {"tfa": False}
    if state.enabled:
        await require_otp(request, identity, purpose="profile")
        await set_mode(db, name, mode)
        LOG.warning("two-factor auth of %s set to %s", name, mode, extra={"user": name})
        return {"tfa": {"mode": mode, "pending": False}}
    return {"tfa": await start(db, name, mode, secret)}
