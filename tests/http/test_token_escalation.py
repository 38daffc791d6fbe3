"""A token never makes a token with more than it has itself (issue 14, item 1), on every backend.

The review's escalation: an admin's token limited to `user:read+write=*`
could not publish, yet `POST /-/tarhold/tokens` with it minted a
full-rights token that published.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .packages import publish
from .test_admin import ADMIN, admin_client, admin_env, call  # noqa: F401 - fixtures
from .users import PASSWORD, add_user, bearer

__all__ = ["admin_client", "admin_env"]


async def admin_token(client: TestClient, **options: Any) -> dict[str, Any]:
    status, body = await call(client, "POST", "/-/tarhold/tokens", ADMIN, json={"user": "admin", **options})
    assert status == 201, body
    return dict(body)


async def npm_token(client: TestClient, token: str, **options: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/-/npm/v1/tokens", json={"password": PASSWORD, **options}, headers=bearer(token))
    return response.status, dict(await response.json())


async def test_a_user_grant_token_cannot_mint_a_publishing_token_through_the_admin_api(
    admin_client: TestClient,
) -> None:
    limited = (await admin_token(admin_client, grants=["user:read+write=*"]))["token"]
    assert await publish(admin_client, limited, "escalated", "1.0.0") == 403
    status, minted = await call(admin_client, "POST", "/-/tarhold/tokens", bearer(limited), json={"user": "admin"})
    assert status == 201, minted
    assert minted["grants"] == ["user:read+write=*"]  # inherited, not full rights
    assert await publish(admin_client, minted["token"], "escalated", "1.0.0") == 403
    status, body = await call(admin_client, "POST", "/-/tarhold/tokens", bearer(limited),
                              json={"user": "admin", "grants": ["pkg:read+write=*"]})
    assert status == 403
    assert "do not cover" in body["error"]


async def test_a_user_grant_token_cannot_mint_a_publishing_token_for_another_user(
    admin_client: TestClient,
) -> None:
    await add_user(admin_client, "bob")
    limited = (await admin_token(admin_client, grants=["user:read+write=*"]))["token"]
    status, minted = await call(admin_client, "POST", "/-/tarhold/tokens", bearer(limited), json={"user": "bob"})
    assert status == 201, minted
    assert await publish(admin_client, minted["token"], "bobs", "1.0.0") == 403


async def test_a_read_only_admin_token_cannot_mint_any_token(admin_client: TestClient) -> None:
    readonly = (await admin_token(admin_client, readonly=True))["token"]
    status, _ = await call(admin_client, "POST", "/-/tarhold/tokens", bearer(readonly), json={"user": "admin"})
    assert status == 403


@pytest.mark.parametrize(
    ("parent", "child", "message"),
    [
        # A read-only token may not write through the admin API at all.
        ({"readonly": True}, {}, "may not change users and tokens"),
        ({"expires": "1d"}, {"expires": "30d"}, "expires later"),
        ({"cidr_whitelist": ["127.0.0.0/8"]}, {"cidr_whitelist": ["0.0.0.0/0"]}, "CIDR"),
        ({"rate_limit": 100}, {"rate_limit": 1000}, "rate limit"),
    ],
    ids=["readonly", "expiry", "cidr", "rate-limit"],
)
async def test_the_admin_api_refuses_a_child_with_more_than_its_parent(
    admin_client: TestClient, parent: dict[str, Any], child: dict[str, Any], message: str
) -> None:
    parent_token = (await admin_token(admin_client, grants=["user:read+write=*"], **parent))["token"]
    status, body = await call(admin_client, "POST", "/-/tarhold/tokens", bearer(parent_token),
                              json={"user": "admin", **child})
    assert status == 403, body
    assert message in body["error"]


async def test_a_child_inherits_what_it_leaves_out(admin_client: TestClient) -> None:
    parent = await admin_token(admin_client, grants=["user:read+write=*"], expires="1d",
                               cidr_whitelist=["127.0.0.0/8"], rate_limit=100)
    status, child = await call(admin_client, "POST", "/-/tarhold/tokens", bearer(parent["token"]),
                               json={"user": "admin"})
    assert status == 201, child
    assert child["grants"] == ["user:read+write=*"]
    assert child["cidr_whitelist"] == ["127.0.0.0/8"]
    assert child["rate_limit"] == 100
    assert child["expires"] == parent["expires"]


async def test_npm_token_create_is_bounded_by_the_token_that_asks(client: TestClient) -> None:
    session = await add_user(client, "alice")
    status, narrow = await npm_token(client, session, cidr_whitelist=["127.0.0.1/32"], expires=1)
    assert status == 201, narrow
    status, body = await npm_token(client, narrow["token"], cidr_whitelist=["127.0.0.0/8"])
    assert status == 403
    assert "CIDR" in body["error"]
    status, body = await npm_token(client, narrow["token"], expires=30)
    assert status == 403
    assert "expires later" in body["error"]
    status, child = await npm_token(client, narrow["token"])
    assert status == 201, child
    assert child["cidr_whitelist"] == ["127.0.0.1/32"]
    assert child["expires"] == narrow["expires"]
    assert child["expires"] is not None and time.time() < _epoch(child["expires"]) <= time.time() + 86400 + 5


async def test_a_read_only_token_creates_no_token(client: TestClient) -> None:
    session = await add_user(client, "alice")
    status, readonly = await npm_token(client, session, readonly=True)
    assert status == 201, readonly
    for options in ({}, {"readonly": True}):
        status, body = await npm_token(client, readonly["token"], **options)
        assert status == 403
        assert "read-only" in body["error"]


def _epoch(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
