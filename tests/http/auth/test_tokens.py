"""Tokens over HTTP, as `npm token` drives them, and what the logs never show."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.http.auth.helpers import error_of, form_action
from tests.http.conftest import MakeClient
from tests.http.users import (
    PASSWORD,
    add_user,
    basic,
    bearer,
    create_token,
    whoami_status,
)

# -- npm token ----------------------------------------------------------------


async def test_token_create_list_and_revoke(client: TestClient) -> None:
    login = await add_user(client, "alice")
    created = await create_token(client, login)
    token, key = created["token"], created["key"]
    assert created["readonly"] is False and created["cidr_whitelist"] is None
    assert await whoami_status(client, token) == 200

    listing = await (await client.get("/-/npm/v1/tokens", headers=bearer(login))).json()
    assert listing["total"] == 2 and listing["urls"] == {}
    listed = {t["key"]: t for t in listing["objects"]}
    assert listed[key]["token"] == token[:6]  # masked: npm prints it with a trailing "…"
    assert token not in str(listing)

    response = await client.delete(f"/-/npm/v1/tokens/token/{key}", headers=bearer(login))
    assert response.status == 204
    assert await whoami_status(client, token) == 401
    missing = await client.delete(f"/-/npm/v1/tokens/token/{key}", headers=bearer(login))
    assert missing.status == 404


async def test_token_revoke_by_the_token_value(client: TestClient) -> None:
    login = await add_user(client, "alice")
    token = (await create_token(client, login))["token"]
    response = await client.delete(f"/-/npm/v1/tokens/token/{token}", headers=bearer(login))
    assert response.status == 204
    assert await whoami_status(client, token) == 401


async def test_token_create_needs_the_password(client: TestClient) -> None:
    login = await add_user(client, "alice")
    response = await client.post(
        "/-/npm/v1/tokens", json={"password": "wrong password"}, headers=bearer(login)
    )
    assert response.status == 401
    assert await error_of(response) == "invalid password"


async def test_a_readonly_token_cannot_create_tokens(client: TestClient) -> None:
    login = await add_user(client, "alice")
    readonly = await create_token(client, login, readonly=True)
    assert readonly["readonly"] is True
    assert await whoami_status(client, readonly["token"]) == 200
    response = await client.post(
        "/-/npm/v1/tokens", json={"password": PASSWORD}, headers=bearer(readonly["token"])
    )
    assert response.status == 403
    assert await error_of(response) == "this token is read-only"
    own = await client.delete(
        f"/-/npm/v1/tokens/token/{readonly['key']}", headers=bearer(readonly["token"])
    )
    assert own.status == 204  # revoking itself is allowed


async def test_npm11_read_only_permission_makes_a_readonly_token(client: TestClient) -> None:
    login = await add_user(client, "alice")
    created = await create_token(
        client, login, name="ci", packages_and_scopes_permission="read-only", expires=30
    )
    assert created["readonly"] is True and created["name"] == "ci"
    assert created["expires"] is not None


async def test_token_limited_to_packages_is_refused_for_now(client: TestClient) -> None:
    login = await add_user(client, "alice")
    response = await client.post(
        "/-/npm/v1/tokens", json={"password": PASSWORD, "packages": ["x"]}, headers=bearer(login)
    )
    assert response.status == 400


async def test_a_token_outside_its_cidr_whitelist_is_refused(client: TestClient) -> None:
    login = await add_user(client, "alice")
    outside = await create_token(client, login, cidr_whitelist=["10.0.0.0/8"])
    assert outside["cidr_whitelist"] == ["10.0.0.0/8"]
    response = await client.get("/-/whoami", headers=bearer(outside["token"]))
    assert response.status == 403
    assert "IP address" in await error_of(response)
    inside = await create_token(client, login, cidr_whitelist=["127.0.0.0/8", "192.168.1.0/24"])
    assert await whoami_status(client, inside["token"]) == 200


@pytest.mark.parametrize(
    "body",
    [
        {"password": PASSWORD, "cidr_whitelist": ["10.0.0.300/8"]},
        {"password": PASSWORD, "cidr_whitelist": "not a cidr"},
        {"password": PASSWORD, "readonly": "yes"},
        {"password": PASSWORD, "expires": "soon"},
        {"readonly": True},
    ],
)
async def test_malformed_token_requests_are_400(client: TestClient, body: dict[str, Any]) -> None:
    login = await add_user(client, "alice")
    response = await client.post("/-/npm/v1/tokens", json=body, headers=bearer(login))
    assert response.status == 400


async def test_a_revoked_token_stops_working_on_another_instance_within_5s(
    make_client: MakeClient,
) -> None:
    first, second = await make_client(), await make_client()
    login = await add_user(first, "alice")
    token = (await create_token(first, login))["token"]
    assert await whoami_status(second, token) == 200  # now cached on the second instance
    revoked_at = time.monotonic()
    key = (await (await first.get("/-/npm/v1/tokens", headers=bearer(login))).json())["objects"]
    token_key = next(t["key"] for t in key if t["token"] == token[:6])
    assert (await first.delete(f"/-/npm/v1/tokens/token/{token_key}", headers=bearer(login))).status == 204
    while await whoami_status(second, token) == 200:
        assert time.monotonic() - revoked_at < 5.0
        await asyncio.sleep(0.2)
    assert await whoami_status(first, token) == 401


# -- logging ------------------------------------------------------------------


async def test_passwords_and_tokens_never_appear_in_logs(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await add_user(client, "alice")
    await client.get("/-/whoami", headers=bearer(token))
    await client.get("/-/whoami", headers=basic("alice", PASSWORD))
    await client.get("/-/whoami", headers=basic("alice", "wrong password"))
    created = (await create_token(client, token))["token"]
    urls = await (await client.post("/-/v1/login")).json()
    await client.post(form_action(urls["loginUrl"]), data={"username": "alice", "password": PASSWORD})
    web_token = (await (await client.get("/" + urls["doneUrl"].split("/", 3)[3])).json())["token"]
    done_secret = urls["doneUrl"].split("secret=")[1]
    await asyncio.sleep(0.05)  # access lines are written after the response went out
    text = caplog.text
    assert "alice" in text  # the access log names the user
    for secret in (PASSWORD, "wrong password", token, created, web_token, done_secret):
        assert secret not in text


async def test_logout_token_in_the_path_is_masked_in_the_access_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await add_user(client, "alice")
    await client.delete(f"/-/user/token/{token}", headers=bearer(token))
    await asyncio.sleep(0.05)
    assert re.search(r"DELETE /-/user/token/\*\*\*", caplog.text)
    assert token not in caplog.text
