"""Accounts over HTTP, as the npm CLI drives them: adduser and login, who is
asking (whoami, tokens, basic auth, logout), and npm profile.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.http.auth.helpers import error_of
from tests.http.conftest import MakeClient
from tests.http.users import (
    PASSWORD,
    add_user,
    adduser_body,
    basic,
    bearer,
    user_path,
    whoami_status,
)

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
    assert response.status == 401
    assert await error_of(response) == "bad username or password; registration of new users is closed"
    assert await add_user(closed, "alice")  # existing users still log in


async def test_registration_limited_by_max_users(make_client: MakeClient) -> None:
    client = await make_client(auth={"max_users": 2})
    await add_user(client, "alice")
    await add_user(client, "bob")
    response = await client.put(user_path("carol"), json=adduser_body("carol"))
    assert response.status == 401
    assert "registration of new users is closed" in await error_of(response)
    assert await add_user(client, "bob")


@pytest.mark.parametrize("auth", [{"max_users": -1}, {"max_users": 1}], ids=["closed", "full"])
async def test_a_closed_registry_answers_an_unknown_name_like_a_wrong_password(
    make_client: MakeClient, auth: dict[str, int]
) -> None:
    # Issue 14, item 6: an existing name got 401, an unknown one 403, so
    # names could be confirmed. Now both are the same 401, and both check a
    # scrypt hash (a dummy one for the unknown name).
    await add_user(await make_client(), "alice")
    closed = await make_client(auth=auth)
    wrong = await closed.put(user_path("alice"), json=adduser_body("alice", "not alices password"))
    unknown = await closed.put(user_path("mallory"), json=adduser_body("mallory", "not alices password"))
    assert (wrong.status, await error_of(wrong)) == (unknown.status, await error_of(unknown))
    assert wrong.status == 401


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
