"""Helpers for tests that need users and tokens over HTTP."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp.test_utils import TestClient

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def user_path(name: str) -> str:
    return f"/-/user/org.couchdb.user:{name}"


def adduser_body(name: str, password: str = PASSWORD, email: str | None = None) -> dict[str, Any]:
    """The body `npm adduser` sends (npm-profile's adduserCouch)."""
    return {
        "_id": f"org.couchdb.user:{name}", "name": name, "password": password,
        "email": email or f"{name}@example.com", "type": "user", "roles": [],
        "date": "2024-05-01T12:00:00.000Z",
    }


async def add_user(
    client: TestClient, name: str = "alice", password: str = PASSWORD, **headers: str
) -> str:
    """Register (or log in) `name` the way npm adduser does; the token it gets."""
    response = await client.put(user_path(name), json=adduser_body(name, password), headers=headers)
    assert response.status == 201, await response.text()
    return str((await response.json())["token"])


async def create_token(
    client: TestClient, token: str, password: str = PASSWORD, **options: Any
) -> dict[str, Any]:
    """`npm token create` with `options` (readonly, cidr_whitelist...); the response body."""
    response = await client.post(
        "/-/npm/v1/tokens", json={"password": password, **options}, headers=bearer(token)
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def whoami_status(client: TestClient, token: str) -> int:
    response = await client.get("/-/whoami", headers=bearer(token))
    await response.read()
    return response.status
