"""The one-time password check: which requests need one, and the answer npm prompts on.

`require_otp(request, identity, purpose=...)` is called by every handler
that two-factor auth guards (see `two_factor.otp_needed` for which and
when). The code comes in the `npm-otp` header, as npm, pnpm and yarn send
it. Without one the answer is the public registry's: 401 with
`WWW-Authenticate: OTP` and a message that says "one-time password", which
npm turns into its OTP prompt (or, non-interactive, an error that says to
pass `--otp`). A wrong or reused code is refused the same way and counts
toward the sign-in throttle of the account, so codes cannot be guessed
faster than passwords.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from registry.domain.access import Action, Identity
from registry.domain.errors import RegistryError
from registry.domain.package_settings import package_mfa, package_settings
from registry.domain.two_factor import PackageMfa, Purpose, check, otp_needed, state_of
from registry.domain.users import get_user
from registry.http.access import Permit, authorize
from registry.http.appkeys import CONFIG, DATABASE, SECRET
from registry.http.sign_in import record, refuse_if_throttled

OTP_HEADER = "npm-otp"
ASK = "This operation requires a one-time password from your authenticator app: pass it with --otp=<code>"
WRONG = "The one-time password is wrong or was used already: pass a fresh code with --otp=<code>"
# The same, for the sign-in forms (npm's web login page, the web UI).
OTP_MISSING = "Your account has two-factor auth: enter the one-time password from your authenticator app too."
OTP_WRONG = "The one-time password is wrong or was used already: enter the next one."


class OtpRequired(RegistryError):
    status = 401
    code = "otp"

    def __init__(self, message: str = ASK) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "OTP"})


async def require_otp(
    request: web.Request, identity: Identity, *, purpose: Purpose, package: str | None = None,
    settings: dict[str, Any] | None = None,
) -> None:
    """Return when `identity` may go on with `purpose` (on `package`, whose settings the caller
    may have read already); OtpRequired or Forbidden otherwise."""
    if identity.trusted is not None:
        return  # the CI job proved itself with its id token; `decide` limited what it may do
    db = request.app[DATABASE]
    user = await get_user(db, identity.user)
    mfa: PackageMfa = "none"
    if package and purpose == "publish":
        mfa = package_mfa(settings if settings is not None else await package_settings(db, package))
    needed = otp_needed(
        state_of(user), purpose, bypass=identity.bypass_2fa, package_mfa=mfa,
        required_by_config=request.app[CONFIG].auth.require_2fa,
    )
    if not needed:
        return
    await check_code(request, identity.user, request.headers.get(OTP_HEADER, ""))


async def check_code(
    request: web.Request, user: str, code: str, *, missing: str = ASK, wrong: str = WRONG
) -> None:
    """Use up `code` as `user`'s one-time password, behind the sign-in throttle; OtpRequired
    (with `missing` or `wrong` as the message) when it is missing, wrong or used already."""
    code = code.strip()
    if not code:
        raise OtpRequired(missing)
    refuse_if_throttled(request, "otp", user)
    good = await check(request.app[DATABASE], user, code, request.app[SECRET])
    record(request, "otp", user, good)
    if not good:
        raise OtpRequired(wrong)


async def authorize_write(
    request: web.Request, name: str, action: Action, settings: dict[str, Any] | None = None,
    *, permission: str | None = None,
) -> Permit:
    """`authorize` for a change of package `name`, then the one-time password it may need."""
    permit = authorize(request, name, action, permission=permission)
    if permit.identity is not None:
        await require_otp(request, permit.identity, purpose="publish", package=name, settings=settings)
    return permit
