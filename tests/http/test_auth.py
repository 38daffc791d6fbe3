"""Accounts, tokens and logins over HTTP, as the npm CLI drives them."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from registry.config import parse_config
from registry.http.app import SERVER_KWARGS, create_app
from registry.http.routes_auth import install

from .conftest import MakeClient
from .users import (
    PASSWORD,
    add_user,
    adduser_body,
    basic,
    bearer,
    create_token,
    user_path,
    whoami_status,
)


@pytest.fixture
def make_client(aiohttp_client: Any, storage_config: dict[str, Any]) -> MakeClient:
    """conftest's make_client, with auth installed and tarhold's own access logger.

    TestServer drops the server_kwargs aiohttp_client hands it, so the server
    is started here with SERVER_KWARGS: the log tests then see the lines
    tarhold writes in production, not aiohttp's default access log.
    """

    async def make(**options: Any) -> TestClient:
        config = parse_config({**storage_config, "log": {"level": "debug"}, **options})
        app = create_app(config)
        install(app)  # a no-op once create_app installs auth itself
        server = TestServer(app)
        await server.start_server(**SERVER_KWARGS)  # type: ignore[arg-type]
        client: TestClient = await aiohttp_client(server)
        return client

    return make


async def error_of(response: Any) -> str:
    return str((await response.json())["error"])


# -- adduser and legacy login -------------------------------------------------


async def test_adduser_creates_the_user_and_returns_a_working_token(client: TestClient) -> None:
    response = await client.put(user_path("alice"), json=adduser_body("alice"))
    assert response.status == 201
    body = await response.json()
    assert body["ok"] is True and body["id"] == "org.couchdb.user:alice"
    who = await client.get("/-/whoami", headers=bearer(body["token"]))
    assert (await who.json()) == {"username": "alice"}


async def test_login_with_the_right_password_returns_a_new_token(client: TestClient) -> None:
    first = await add_user(client, "alice")
    second = await add_user(client, "alice")
    assert first != second
    assert await whoami_status(client, first) == 200
    assert await whoami_status(client, second) == 200


async def test_login_with_a_wrong_password_is_refused(client: TestClient) -> None:
    await add_user(client, "alice")
    response = await client.put(user_path("alice"), json=adduser_body("alice", "not the password"))
    assert response.status == 401
    assert await error_of(response) == "bad username or password"


async def test_login_again_while_holding_a_revoked_token(client: TestClient) -> None:
    old = await add_user(client, "alice")
    await client.delete(f"/-/user/token/{old}", headers=bearer(old))
    # npm sends the old token along with the login request.
    assert await add_user(client, "alice", Authorization=f"Bearer {old}")


async def test_legacy_login_retry_path_with_rev_is_accepted(client: TestClient) -> None:
    await add_user(client, "alice")
    response = await client.put(user_path("alice") + "/-rev/1-abc", json=adduser_body("alice"))
    assert response.status == 201


async def test_registration_closed_by_max_users_minus_one(make_client: MakeClient) -> None:
    open_registry = await make_client()
    await add_user(open_registry, "alice")
    closed = await make_client(auth={"max_users": -1})
    response = await closed.put(user_path("bob"), json=adduser_body("bob"))
    assert response.status == 403
    assert await error_of(response) == "user registration is disabled"
    assert await add_user(closed, "alice")  # existing users still log in


async def test_registration_limited_by_max_users(make_client: MakeClient) -> None:
    client = await make_client(auth={"max_users": 2})
    await add_user(client, "alice")
    await add_user(client, "bob")
    response = await client.put(user_path("carol"), json=adduser_body("carol"))
    assert response.status == 403
    assert "maximum of 2 users" in await error_of(response)
    assert await add_user(client, "bob")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (user_path("alice"), b"{not json", "not valid JSON"),
        (user_path("alice"), b"[1, 2]", "JSON object"),
        (user_path("alice"), b'{"name": "alice"}', "password is required"),
        (user_path("alice"), b'{"name": "bob", "password": "long enough"}', "does not match"),
        (user_path("Alice"), b'{"name": "Alice", "password": "long enough"}', "invalid user name"),
        (user_path("al%20ice"), b'{"password": "long enough"}', "invalid user name"),
        (user_path("alice"), b'{"name": "alice", "password": "short"}', "at least 8"),
        (user_path("alice"), b'{"password": "long enough", "email": "nope"}', "email"),
    ],
)
async def test_malformed_adduser_bodies_are_refused(
    client: TestClient, path: str, body: bytes, message: str
) -> None:
    response = await client.put(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert message in await error_of(response)


async def test_user_documents_are_visible_to_signed_in_users(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    await add_user(client, "bob")
    own = await client.get(user_path("alice"), headers=bearer(alice))
    assert own.status == 200
    assert (await own.json())["email"] == "alice@example.com"
    # npm owner add reads the new owner's name and email from here.
    other = await (await client.get(user_path("bob"), headers=bearer(alice))).json()
    assert (other["name"], other["email"]) == ("bob", "bob@example.com")
    assert "password" not in other
    assert (await client.get(user_path("carol"), headers=bearer(alice))).status == 404
    assert (await client.get(user_path("alice"))).status == 401


# -- who is asking ------------------------------------------------------------


async def test_whoami_with_a_bearer_token(client: TestClient) -> None:
    token = await add_user(client, "alice")
    response = await client.get("/-/whoami", headers=bearer(token))
    assert (await response.json()) == {"username": "alice"}


async def test_whoami_with_basic_auth(client: TestClient) -> None:
    await add_user(client, "alice")
    response = await client.get("/-/whoami", headers=basic("alice", PASSWORD))
    assert (await response.json()) == {"username": "alice"}
    wrong = await client.get("/-/whoami", headers=basic("alice", "wrong password"))
    assert wrong.status == 401
    assert await error_of(wrong) == "bad username or password"


async def test_whoami_anonymous_is_401(client: TestClient) -> None:
    response = await client.get("/-/whoami")
    assert response.status == 401
    assert "authentication required" in await error_of(response)


async def test_an_invalid_token_is_401_with_a_message_npm_prints(client: TestClient) -> None:
    response = await client.get("/-/whoami", headers=bearer("not-a-real-token"))
    assert response.status == 401
    assert "invalid, expired or revoked token" in await error_of(response)
    # npm prints body.error only without a WWW-Authenticate header.
    assert "WWW-Authenticate" not in response.headers


async def test_ping_is_never_authenticated(client: TestClient) -> None:
    response = await client.get("/-/ping", headers=bearer("not-a-real-token"))
    assert response.status == 200


async def test_logout_revokes_the_token(client: TestClient) -> None:
    token = await add_user(client, "alice")
    response = await client.delete(f"/-/user/token/{token}", headers=bearer(token))
    assert response.status == 200
    assert (await response.json()) == {"ok": True}
    assert await whoami_status(client, token) == 401
    again = await client.delete(f"/-/user/token/{token}", headers=bearer(token))
    assert again.status == 200  # already gone: npm logout still succeeds


async def test_logout_cannot_revoke_someone_elses_token(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    bob = await add_user(client, "bob")
    response = await client.delete(f"/-/user/token/{bob}", headers=bearer(alice))
    assert response.status == 403
    assert await whoami_status(client, bob) == 200


# -- npm profile --------------------------------------------------------------


async def test_profile_get_shows_the_user(client: TestClient) -> None:
    token = await add_user(client, "alice")
    profile = await (await client.get("/-/npm/v1/user", headers=bearer(token))).json()
    assert profile["name"] == "alice"
    assert profile["email"] == "alice@example.com"
    assert profile["tfa"] is False and profile["email_verified"] is False


async def test_profile_set_changes_the_password(client: TestClient) -> None:
    token = await add_user(client, "alice")
    assert (await client.get("/-/whoami", headers=basic("alice", PASSWORD))).status == 200
    change = {"password": {"old": "wrong password", "new": "a new password"}}
    assert (await client.post("/-/npm/v1/user", json=change, headers=bearer(token))).status == 401
    change["password"]["old"] = PASSWORD
    response = await client.post("/-/npm/v1/user", json=change, headers=bearer(token))
    assert response.status == 200
    assert (await client.get("/-/whoami", headers=basic("alice", PASSWORD))).status == 401
    assert (await client.get("/-/whoami", headers=basic("alice", "a new password"))).status == 200


async def test_profile_set_changes_public_fields(client: TestClient) -> None:
    token = await add_user(client, "alice")
    body = {"email": "new@example.com", "fullname": "Alice A", "github": None}
    response = await client.post("/-/npm/v1/user", json=body, headers=bearer(token))
    profile = await response.json()
    assert profile["email"] == "new@example.com" and profile["fullname"] == "Alice A"


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


# -- web login ----------------------------------------------------------------


def form_action(login_url: str) -> str:
    return "/" + login_url.split("/", 3)[3]


async def test_web_login_end_to_end(client: TestClient) -> None:
    await add_user(client, "alice")
    start = await client.post("/-/v1/login", json={})
    assert start.status == 200
    urls = await start.json()
    host = f"http://{client.host}:{client.port}"
    assert urls["loginUrl"].startswith(host + "/-/v1/login/")
    assert urls["doneUrl"].startswith(host + "/-/v1/done/")
    done_path = "/" + urls["doneUrl"].split("/", 3)[3]

    pending = await client.get(done_path)
    assert pending.status == 202 and pending.headers["Retry-After"] == "1"
    assert (await pending.json()) == {}

    page = await client.get(form_action(urls["loginUrl"]))
    assert page.status == 200 and "<form" in await page.text()
    wrong = await client.post(
        form_action(urls["loginUrl"]), data={"username": "alice", "password": "wrong password"}
    )
    assert wrong.status == 401 and "bad username or password" in await wrong.text()
    signed_in = await client.post(
        form_action(urls["loginUrl"]), data={"username": "alice", "password": PASSWORD}
    )
    assert signed_in.status == 200 and "close this page" in await signed_in.text()

    done = await client.get(done_path)
    assert done.status == 200
    token = (await done.json())["token"]
    assert (await (await client.get("/-/whoami", headers=bearer(token))).json()) == {"username": "alice"}
    assert (await client.get(done_path)).status == 404


async def test_web_adduser_creates_an_account(client: TestClient) -> None:
    urls = await (await client.post("/-/v1/login", json={"create": True})).json()
    page = await client.get(form_action(urls["loginUrl"]))
    assert 'name="email"' in await page.text()
    form = {"username": "newbie", "password": PASSWORD, "email": "n@example.com"}
    assert (await client.post(form_action(urls["loginUrl"]), data=form)).status == 200
    token = (await (await client.get("/" + urls["doneUrl"].split("/", 3)[3])).json())["token"]
    assert await whoami_status(client, token) == 200


async def test_web_login_done_url_needs_its_secret(client: TestClient) -> None:
    urls = await (await client.post("/-/v1/login")).json()
    done_path = "/" + urls["doneUrl"].split("/", 3)[3]
    assert (await client.get(done_path.split("?")[0])).status == 404
    assert (await client.get(done_path.split("?")[0] + "?secret=guess")).status == 404
    assert (await client.get("/-/v1/done/unknown-session?secret=x")).status == 404
    assert (await client.get("/-/v1/login/unknown-session")).status == 404


async def test_web_login_urls_follow_forwarded_headers(client: TestClient) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "npm.example.com"}
    urls = await (await client.post("/-/v1/login", headers=headers)).json()
    assert urls["loginUrl"].startswith("https://npm.example.com/-/v1/login/")


async def test_web_login_urls_follow_public_url(make_client: MakeClient) -> None:
    client = await make_client(public_url="https://registry.example.com/npm")
    urls = await (await client.post("/-/v1/login")).json()
    assert urls["doneUrl"].startswith("https://registry.example.com/npm/-/v1/done/")


async def test_web_login_with_a_stale_token_is_not_blocked(client: TestClient) -> None:
    response = await client.post("/-/v1/login", json={}, headers=bearer("stale-token"))
    assert response.status == 200  # a 4xx would make npm fall back to the legacy prompts


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

