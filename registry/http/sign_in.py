"""Every password check goes through here: the login throttle first, the outcome counted after.

The channels (`CHANNELS`) share one `LoginThrottle` per process, so guessing
through one does not reset the backoff of another. A throttled try is 429
with Retry-After before any password work.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from registry.domain.errors import TooManyRequests, Unauthorized
from registry.domain.throttle import LoginThrottle
from registry.domain.users import verify_password
from registry.http.appkeys import DATABASE
from registry.http.clients import client_address
from registry.http.metrics import metrics

T = TypeVar("T")

CHANNELS = frozenset({"basic", "adduser", "web-login", "web", "token", "password", "otp"})
THROTTLE = web.AppKey("login_throttle", LoginThrottle)


def setup(app: web.Application) -> None:
    app[THROTTLE] = LoginThrottle()


def _throttle(request: web.Request) -> LoginThrottle:
    return request.app[THROTTLE]


def _address(request: web.Request) -> str:
    return client_address(request) or "?"


def refuse_if_throttled(request: web.Request, channel: str, account: str) -> None:
    """429 with Retry-After when this address must wait before trying `account` again."""
    wait = _throttle(request).retry_after(account, _address(request))
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        metrics().sign_ins.labels(channel, "throttled").inc()
        raise TooManyRequests(
            f"too many failed sign-ins; try again in {seconds} s", headers={"Retry-After": str(seconds)}
        )


def record(request: web.Request, channel: str, account: str, ok: bool) -> None:
    throttle, address = _throttle(request), _address(request)
    if ok:
        throttle.succeeded(account, address)
    else:
        throttle.failed(account, address)
    metrics().sign_ins.labels(channel, "ok" if ok else "failed").inc()


async def checked_password(request: web.Request, channel: str, account: str, password: str) -> dict[str, Any] | None:
    """`verify_password` behind the throttle: the user, or None for a wrong password."""
    refuse_if_throttled(request, channel, account)
    user = await verify_password(request.app[DATABASE], account, password)
    record(request, channel, account, user is not None)
    return user


async def guarded(request: web.Request, channel: str, account: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run a sign-in (`lambda: sign_in(...)`) behind the throttle; its 401 counts as a failure."""
    refuse_if_throttled(request, channel, account)
    try:
        result = await attempt()
    except Unauthorized:
        record(request, channel, account, False)
        raise
    record(request, channel, account, True)
    return result
