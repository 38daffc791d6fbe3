"""Two-factor auth with TOTP (RFC 6238, through pyotp), as `npm profile enable-2fa` drives it.

The user item carries `tfa`:
- absent: no second factor;
- `{"pending": true, "mode", "secret"}`: enrolment started (`npm profile
  enable-2fa` got the otpauth URL) and not yet confirmed with a code;
- `{"pending": false, "mode", "secret", "recovery", "last_step"}`: on.

`mode` is npm's: `auth-only` (a code to log in and to change the profile)
or `auth-and-writes` (also for publishes, package changes and new tokens).
The TOTP secret is stored encrypted (AES-GCM under a key derived from the
registry secret with HKDF), so a copy of the database alone does not give
codes. Recovery codes are stored as SHA-256 hashes and each works once.
A code is accepted in the current 30-second step or the one either side
(clock drift), and never twice: `last_step` moves forward with a
conditional write on the user item, so two instances cannot both accept it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import pyotp

from registry.domain import sealing
from registry.domain.errors import BadRequest, Forbidden
from registry.domain.users import PROFILE_SK, WRITE_RETRIES, user_pk
from storage.base import Conflict, NotFound, RegistryDatabase

Mode = Literal["auth-only", "auth-and-writes"]
MODES: tuple[Mode, ...] = ("auth-only", "auth-and-writes")
ISSUER = "tarhold"
RECOVERY_CODES = 8
STEP = 30
DRIFT_STEPS = 1
MAX_CODE = 64
SEAL_PURPOSE = b"tarhold totp secret"


@dataclass(frozen=True)
class TwoFactor:
    """A user's second factor as the rest of the registry needs to know it."""

    mode: Mode | None  # None: off (or only pending)
    pending: bool = False

    @property
    def enabled(self) -> bool:
        return self.mode is not None and not self.pending

    @property
    def for_writes(self) -> bool:
        return self.enabled and self.mode == "auth-and-writes"


def state_of(user: dict[str, Any] | None) -> TwoFactor:
    tfa = (user or {}).get("tfa")
    if not isinstance(tfa, dict) or tfa.get("mode") not in MODES:
        return TwoFactor(None)
    return TwoFactor(tfa["mode"], bool(tfa.get("pending")))


def profile_tfa(user: dict[str, Any]) -> dict[str, Any] | bool:
    """The `tfa` field `npm profile get` shows: false, or {pending, mode}."""
    state = state_of(user)
    if state.mode is None:
        return False
    return {"pending": state.pending, "mode": state.mode}


# -- the secret, encrypted at rest --------------------------------------------------


def seal(secret: str, registry_secret: str) -> str:
    return sealing.seal(secret, registry_secret, SEAL_PURPOSE)


def unseal(sealed: str, registry_secret: str) -> str:
    try:
        return sealing.unseal(sealed, registry_secret, SEAL_PURPOSE)
    except ValueError:
        raise ValueError("the stored TOTP secret does not open with this registry's secret") from None


def recovery_hash(code: str) -> str:
    return hashlib.sha256(b"tarhold-recovery:" + code.strip().lower().encode()).hexdigest()


# -- enrolment ----------------------------------------------------------------------


async def _change(db: RegistryDatabase, name: str, change: Any) -> dict[str, Any]:
    """Read-modify-write of the user item on its `ver`; `change(user)` returns the new `tfa` or raises."""
    for _ in range(WRITE_RETRIES):
        user = await db.get(user_pk(name), PROFILE_SK)
        updated = {k: v for k, v in user.items() if k != "ver"}
        tfa = change(updated)
        if tfa is None:
            updated.pop("tfa", None)
        else:
            updated["tfa"] = tfa
        try:
            await db.put(user_pk(name), PROFILE_SK, updated, if_ver=user["ver"])
        except Conflict:
            continue
        return updated
    raise Conflict(f"user {name} kept changing; try again")


async def start(db: RegistryDatabase, name: str, mode: Mode, registry_secret: str) -> str:
    """Begin enrolment (again, if one was pending): the otpauth URL npm shows as a QR code."""
    secret = pyotp.random_base32()
    await _change(db, name, lambda user: {"pending": True, "mode": mode, "secret": seal(secret, registry_secret)})
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER)


async def confirm(db: RegistryDatabase, name: str, code: str, registry_secret: str) -> list[str]:
    """Finish a pending enrolment with a first code; the recovery codes, shown this once."""
    # 64 hex digits, as the public registry's: npm's OTP prompt takes digits or exactly that.
    codes = [secrets.token_hex(32) for _ in range(RECOVERY_CODES)]

    def enable(user: dict[str, Any]) -> dict[str, Any]:
        tfa = user.get("tfa")
        if not isinstance(tfa, dict) or not tfa.get("pending"):
            raise BadRequest("two-factor auth is not being set up: run npm profile enable-2fa first")
        step = _matching_step(unseal(tfa["secret"], registry_secret), code, last_step=None)
        if step is None:
            raise BadRequest("that one-time password does not match; check the authenticator's clock and try again")
        return {
            "pending": False, "mode": tfa["mode"], "secret": tfa["secret"],
            "recovery": [recovery_hash(c) for c in codes], "last_step": step,
        }

    await _change(db, name, enable)
    return codes


async def set_mode(db: RegistryDatabase, name: str, mode: Mode) -> None:
    def change(user: dict[str, Any]) -> dict[str, Any]:
        return {**user["tfa"], "mode": mode}

    await _change(db, name, change)


async def disable(db: RegistryDatabase, name: str) -> None:
    await _change(db, name, lambda user: None)


# -- checking a code ----------------------------------------------------------------


def _matching_step(secret: str, code: str, last_step: int | None, now: float | None = None) -> int | None:
    """The time step `code` is valid in (current ± DRIFT_STEPS, after `last_step`), or None."""
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // STEP)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.at(step * STEP), code):
            return step
    return None


class _Rejected(Exception):
    """The code is not good: nothing is written."""


async def check(db: RegistryDatabase, name: str, code: str, registry_secret: str) -> bool:
    """Whether `code` (a TOTP code, or a recovery code) is good now; a good one is used up."""
    if not code or len(code) > MAX_CODE:
        return False

    def use(user: dict[str, Any]) -> dict[str, Any]:
        tfa = dict(user.get("tfa") or {})
        if tfa.get("pending") or "secret" not in tfa:
            raise _Rejected
        step = _matching_step(unseal(tfa["secret"], registry_secret), code, tfa.get("last_step"))
        if step is not None:
            return {**tfa, "last_step": step}
        digest = recovery_hash(code)
        recovery = list(tfa.get("recovery") or [])
        if not any(hmac.compare_digest(digest, stored) for stored in recovery):
            raise _Rejected
        return {**tfa, "recovery": [stored for stored in recovery if stored != digest]}

    try:
        await _change(db, name, use)
    except (_Rejected, NotFound):
        return False
    return True


# -- when a code is needed ------------------------------------------------------------

Purpose = Literal["login", "profile", "token", "publish", "review", "trust", "org"]
# A package's `npm access set mfa=...`: none (the user's own mode decides), publish
# (every publish needs a code, from a user with 2FA), automation (the same, but a
# token made with --bypass-2fa may publish without one).
PackageMfa = Literal["none", "publish", "automation"]
ENABLE_HINT = "enable it with `npm profile enable-2fa auth-and-writes`"


def otp_needed(
    state: TwoFactor, purpose: Purpose, *, bypass: bool = False, package_mfa: PackageMfa = "none",
    required_by_config: bool = False,
) -> bool:
    """Whether this request must carry a one-time password; Forbidden when it cannot have one.

    - login, profile: whenever 2FA is on (either mode);
    - token (creating one): under auth-and-writes;
    - publish (every package write): under auth-and-writes, unless the token
      was made with `--bypass-2fa` (npm's automation semantics); a package set
      to `mfa=publish` needs a code from everyone, bypass or not, and one set
      to `mfa=automation` from everyone but bypass tokens;
    - review (approving or rejecting a staged version): whenever 2FA is on;
      a bypass token does not skip it: reviewing is the human step;
    - trust (a package's trusted-publishing configurations): whenever 2FA is on;
    - org (members, teams, grants, visibility of an organization): as token.
    `required_by_config` (auth.require_2fa) refuses writes to users without 2FA.
    """
    writes = purpose in ("token", "publish", "review", "trust", "org")
    if writes and required_by_config and not state.enabled:
        raise Forbidden(f"this registry requires two-factor auth for writes: {ENABLE_HINT}")
    if purpose in ("login", "profile", "review", "trust"):
        return state.enabled
    if purpose in ("token", "org"):
        return state.for_writes
    if package_mfa != "none":
        if package_mfa == "automation" and bypass:
            return False
        if not state.enabled:
            raise Forbidden(f"this package requires two-factor auth to publish: {ENABLE_HINT}")
        return True
    return state.for_writes and not bypass
