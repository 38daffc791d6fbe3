"""A token's limits over HTTP: expiry, CIDR (and X-Forwarded-For), read-only,
revocation across instances, rate limit, and coalesced last-used writes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.domain.users import create_token as db_create_token
from registry.domain.users import token_pk
from registry.http.appkeys import DATABASE
from registry.http.auth import caches

from .conftest import MakeClient
from .packages import path_of, publish
from .users import PASSWORD, add_user, bearer, create_token, whoami_status


async def error_of(response: Any) -> str:
    return str((await response.json())["error"])


# -- expiry -----------------------------------------------------------------------


async def test_an_expired_token_is_401_token_expired(client: TestClient) -> None:
    await add_user(client, "alice")
    db = client.server.app[DATABASE]
    expired, _ = await db_create_token(db, "alice", expires=int(time.time()) - 60)
    response = await client.get("/-/whoami", headers=bearer(expired))
    assert response.status == 401
    assert (await error_of(response)).startswith("token expired")


async def test_a_token_stops_working_when_it_expires_even_while_cached(client: TestClient) -> None:
    await add_user(client, "alice")
    expires = int(time.time()) + 1
    token, _ = await db_create_token(client.server.app[DATABASE], "alice", expires=expires)
    assert await whoami_status(client, token) == 200  # now in this instance's cache
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.05)
    response = await client.get("/-/whoami", headers=bearer(token))
    assert response.status == 401
    assert (await error_of(response)).startswith("token expired")


async def test_expires_takes_npms_days_or_an_iso_date(client: TestClient) -> None:
    login = await add_user(client, "alice")
    in_days = await create_token(client, login, expires=7)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600)) + "Z"
    at_date = await create_token(client, login, expires=stamp)
    assert at_date["expires"].startswith(stamp[:19])
    for created in (in_days, at_date):
        assert await whoami_status(client, created["token"]) == 200
    for bad in (0, "tomorrow", "2001-01-01"):
        response = await client.post(
            "/-/npm/v1/tokens", json={"password": PASSWORD, "expires": bad}, headers=bearer(login)
        )
        assert response.status == 400, bad
        assert "expires must be" in await error_of(response)


# -- CIDR and X-Forwarded-For -------------------------------------------------------------


@pytest.mark.parametrize(
    ("trust", "forwarded", "status"),
    [
        (None, "203.0.113.7", 403),  # not trusted by default: the peer (127.0.0.1) counts
        (False, "203.0.113.7", 403),
        (True, "203.0.113.7", 200),
        (True, "203.0.113.7, 127.0.0.1", 403),  # the last hop is what the proxy saw
        (True, None, 403),
        (["127.0.0.0/8"], "198.51.100.1, 203.0.113.7", 200),
        (["127.0.0.0/8"], "203.0.113.7, 198.51.100.1", 403),  # the client is the last non-proxy
        (["10.0.0.0/8"], "203.0.113.7", 403),  # the peer is no trusted proxy
    ],
)
async def test_cidr_whitelist_reads_x_forwarded_for_only_when_trusted(
    make_client: MakeClient, trust: Any, forwarded: str | None, status: int
) -> None:
    client = await make_client(**({"auth": {"trust_forwarded_for": trust}} if trust is not None else {}))
    login = await add_user(client, "alice")
    token = (await create_token(client, login, cidr_whitelist=["203.0.113.0/24"]))["token"]
    headers = bearer(token) | ({"X-Forwarded-For": forwarded} if forwarded else {})
    response = await client.get("/-/whoami", headers=headers)
    assert response.status == status, await response.text()
    if status == 403:
        assert await error_of(response) == "this token is not allowed from your IP address"


# -- read-only ---------------------------------------------------------------------------


async def test_a_read_only_token_reads_but_never_writes(client: TestClient) -> None:
    login = await add_user(client, "alice")
    assert await publish(client, login, "ro-pkg", "1.0.0") == 201
    readonly = (await create_token(client, login, readonly=True))["token"]
    assert (await client.get("/ro-pkg", headers=bearer(readonly))).status == 200
    refused = await client.put(path_of("ro-pkg") + "/beta", json="1.0.0", headers=bearer(readonly))
    assert refused.status == 403 and await error_of(refused) == "this token is read-only"
    assert await publish(client, readonly, "ro-pkg", "1.1.0") == 403
    profile = await client.post("/-/npm/v1/user", json={"fullname": "A"}, headers=bearer(readonly))
    assert profile.status == 403


# -- revocation across instances ---------------------------------------------------------


async def test_a_revoked_grant_token_stops_on_another_instance_within_5s(make_client: MakeClient) -> None:
    first, second = await make_client(), await make_client()
    login = await add_user(first, "alice")
    created = await create_token(first, login, grants=["pkg:read=*", "user:read=~alice"])
    assert await whoami_status(second, created["token"]) == 200  # cached on the second
    response = await first.delete(f"/-/npm/v1/tokens/token/{created['key']}", headers=bearer(login))
    assert response.status == 204
    revoked_at = time.monotonic()
    assert await whoami_status(first, created["token"]) == 401
    while await whoami_status(second, created["token"]) == 200:
        assert time.monotonic() - revoked_at < 5.0, "still accepted on the other instance after 5 s"
        await asyncio.sleep(0.2)
    assert await whoami_status(second, created["token"]) == 401


# -- rate limit ----------------------------------------------------------------------------


async def test_over_the_configured_rate_is_429_with_retry_after(make_client: MakeClient) -> None:
    client = await make_client(auth={"rate_limit": {"requests_per_minute": 3}})
    login = await add_user(client, "alice")
    token = (await create_token(client, login))["token"]
    assert [await whoami_status(client, token) for _ in range(3)] == [200, 200, 200]
    response = await client.get("/-/whoami", headers=bearer(token))
    assert response.status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 20
    assert "limit is 3 a minute" in await error_of(response)
    assert await whoami_status(client, login) in {200, 429}  # its own bucket, not the other's
    other = (await create_token(client, login))
    assert await whoami_status(client, other["token"]) == 200


async def test_a_tokens_own_rate_limit_overrides_the_default(make_client: MakeClient) -> None:
    client = await make_client(auth={"rate_limit": {"requests_per_minute": 1000}})
    await add_user(client, "alice")
    token, _ = await db_create_token(client.server.app[DATABASE], "alice", rate_limit=2)
    assert [await whoami_status(client, token) for _ in range(3)] == [200, 200, 429]


async def test_no_rate_limit_by_default(client: TestClient) -> None:
    login = await add_user(client, "alice")
    statuses = await asyncio.gather(*(whoami_status(client, login) for _ in range(50)))
    assert set(statuses) == {200}


# -- last used ----------------------------------------------------------------------------


async def test_last_used_is_written_once_for_many_requests(client: TestClient) -> None:
    login = await add_user(client, "alice")
    created = await create_token(client, login)
    db, recorder = client.server.app[DATABASE], caches(client.server.app).last_used
    assert (await db.get(token_pk("alice"), created["key"]))["ver"] == 1
    for _ in range(25):
        assert await whoami_status(client, created["token"]) == 200
    await recorder.drain()
    item = await db.get(token_pk("alice"), created["key"])
    assert item["ver"] == 2, "expected exactly one last_used write for 25 requests"
    assert item["last_used"] is not None and item["last_used"].endswith("Z")
    listing = await (await client.get("/-/npm/v1/tokens", headers=bearer(login))).json()
    assert next(t for t in listing["objects"] if t["key"] == created["key"])["last_used"] == item["last_used"]


async def test_a_failing_last_used_write_never_fails_the_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    login = await add_user(client, "alice")
    token = (await create_token(client, login))["token"]

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr("registry.domain.ratelimit.touch_token", broken)
    assert await whoami_status(client, token) == 200
    await caches(client.server.app).last_used.drain()
    assert "could not record the last use of token" in caplog.text
