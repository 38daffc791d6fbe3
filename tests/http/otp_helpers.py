"""Two-factor auth helpers for HTTP tests: an authenticator app, and enrolling as npm does."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import pyotp
from aiohttp.test_utils import TestClient

from .users import PASSWORD, bearer

PROFILE = "/-/npm/v1/user"


class Authenticator:
    """The user's authenticator app: a fresh code each time (the steps either side of now,
    oldest first, as the registry accepts them), then the recovery codes."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        now = int(time.time() // 30)
        self.codes = [self.totp.at(step * 30) for step in (now - 1, now, now + 1)]
        self.recovery: list[str] = []

    def code(self) -> str:
        return self.codes.pop(0) if self.codes else self.recovery.pop(0)


async def enable_2fa(client: TestClient, token: str, mode: str = "auth-and-writes") -> Authenticator:
    """What `npm profile enable-2fa` does: the otpauth URL, then the first code."""
    response = await client.post(PROFILE, json={"tfa": {"password": PASSWORD, "mode": mode}}, headers=bearer(token))
    assert response.status == 200, await response.text()
    url = (await response.json())["tfa"]
    assert url.startswith("otpauth://totp/")
    app = Authenticator(parse_qs(urlparse(url).query)["secret"][0])
    response = await client.post(PROFILE, json={"tfa": [app.code()]}, headers=bearer(token))
    assert response.status == 200, await response.text()
    app.recovery = (await response.json())["tfa"]
    assert len(app.recovery) == 8
    return app


def with_otp(token: str, code: str) -> dict[str, str]:
    return {**bearer(token), "npm-otp": code}


async def assert_asks_for_otp(response: object) -> None:
    assert response.status == 401  # type: ignore[attr-defined]
    assert response.headers["WWW-Authenticate"] == "OTP"  # type: ignore[attr-defined]
    assert "one-time password" in (await response.json())["error"]  # type: ignore[attr-defined]
