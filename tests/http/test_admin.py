"""The admin API under /-/tarhold/ and the admin bootstrap from the environment, on every backend."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.config import parse_config
from registry.http.app import create_app
from storage.base import ConfigError

from .conftest import MakeClient
from .users import PASSWORD, add_user, basic, bearer, whoami_status

ADMIN_PASSWORD = "operator chose this"
ADMIN_TOKEN = "tarhold-operator-token-0123456789abcdef"
ADMIN = basic("admin", ADMIN_PASSWORD)


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("TARHOLD_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.delenv("TARHOLD_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("TARHOLD_ADMIN_USER", raising=False)
    return monkeypatch


@pytest.fixture
async def admin_client(admin_env: pytest.MonkeyPatch, make_client: MakeClient) -> TestClient:
    """An app whose first start created `admin` from TARHOLD_ADMIN_PASSWORD."""
    return await make_client()


async def call(client: TestClient, method: str, path: str, headers: dict[str, str] | None = None,
               **kwargs: Any) -> tuple[int, Any]:
    response = await client.request(method, path, headers=headers or {}, **kwargs)
    body = await response.json() if response.content_type == "application/json" else await response.text()
    return response.status, body


async def users_of(client: TestClient) -> dict[str, dict[str, Any]]:
    status, body = await call(client, "GET", "/-/tarhold/users", ADMIN)
    assert status == 200, body
    return {u["name"]: u for u in body["users"]}


# -- who may call it -----------------------------------------------------------

ENDPOINTS = [
    ("GET", "/-/tarhold/users", None),
    ("POST", "/-/tarhold/users", {"name": "bob", "password": PASSWORD}),
    ("GET", "/-/tarhold/users/admin", None),
    ("PATCH", "/-/tarhold/users/admin", {"email": "a@example.com"}),
    ("DELETE", "/-/tarhold/users/admin", None),
    ("GET", "/-/tarhold/tokens", None),
    ("POST", "/-/tarhold/tokens", {"user": "admin"}),
    ("DELETE", f"/-/tarhold/tokens/admin/{'0' * 32}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_the_admin_api_is_401_anonymous_and_403_for_other_users(
    admin_client: TestClient, method: str, path: str, body: Any
) -> None:
    status, answer = await call(admin_client, method, path, json=body)
    assert status == 401 and "error" in answer
    alice = await add_user(admin_client, "alice")
    status, answer = await call(admin_client, method, path, bearer(alice), json=body)
    assert status == 403 and answer == {"error": "the admin API is for admins only"}


async def test_an_admin_token_with_grants_needs_user_grants_on_every_user(admin_client: TestClient) -> None:
    async def token(**options: Any) -> str:
        status, body = await call(admin_client, "POST", "/-/tarhold/tokens", ADMIN, json={"user": "admin", **options})
        assert status == 201, body
        return str(body["token"])

    reader = await token(grants=["user:read=*"])
    writer = await token(grants=["user:read+write=*"])
    one_user = await token(grants=["user:read+write=~admin"])
    packages = await token(grants=["pkg:read+write=*"])
    readonly = await token(readonly=True)
    new_user = {"name": "carol", "password": PASSWORD}
    assert (await call(admin_client, "GET", "/-/tarhold/users", bearer(reader)))[0] == 200
    assert (await call(admin_client, "POST", "/-/tarhold/users", bearer(reader), json=new_user))[0] == 403
    assert (await call(admin_client, "GET", "/-/tarhold/users", bearer(one_user)))[0] == 403
    assert (await call(admin_client, "GET", "/-/tarhold/users", bearer(packages)))[0] == 403
    assert (await call(admin_client, "GET", "/-/tarhold/tokens", bearer(readonly)))[0] == 200
    assert (await call(admin_client, "POST", "/-/tarhold/users", bearer(readonly), json=new_user))[0] == 403
    assert (await call(admin_client, "POST", "/-/tarhold/users", bearer(writer), json=new_user))[0] == 201


# -- users ---------------------------------------------------------------------


async def test_admin_creates_changes_and_removes_users(admin_client: TestClient) -> None:
    status, created = await call(admin_client, "POST", "/-/tarhold/users", ADMIN,
                                 json={"name": "bob", "password": PASSWORD, "email": "bob@example.com"})
    assert status == 201
    assert created | {"created": None, "updated": None} == {
        "name": "bob", "email": "bob@example.com", "admin": False, "created": None, "updated": None,
    }
    assert "password" not in created
    assert await whoami_status(admin_client, "x") == 401
    assert (await call(admin_client, "GET", "/-/whoami", basic("bob", PASSWORD)))[0] == 200
    assert set(await users_of(admin_client)) == {"admin", "bob"}

    status, changed = await call(admin_client, "PATCH", "/-/tarhold/users/bob", ADMIN,
                                 json={"password": "a new password", "admin": True, "email": None})
    assert status == 200 and changed["admin"] is True and changed["email"] is None
    assert (await call(admin_client, "GET", "/-/whoami", basic("bob", "a new password")))[0] == 200
    assert (await call(admin_client, "GET", "/-/tarhold/users", basic("bob", "a new password")))[0] == 200

    bob_token = await add_user(admin_client, "bob", "a new password")
    status, removed = await call(admin_client, "DELETE", "/-/tarhold/users/bob", ADMIN)
    assert status == 200 and removed == {"ok": True, "name": "bob", "revoked_tokens": 1}
    assert await whoami_status(admin_client, bob_token) == 401
    assert set(await users_of(admin_client)) == {"admin"}
    assert (await call(admin_client, "GET", "/-/tarhold/users/bob", ADMIN))[0] == 404
    assert (await call(admin_client, "DELETE", "/-/tarhold/users/bob", ADMIN))[0] == 404


async def test_the_last_admin_can_be_neither_demoted_nor_removed(admin_client: TestClient) -> None:
    status, body = await call(admin_client, "PATCH", "/-/tarhold/users/admin", ADMIN, json={"admin": False})
    assert status == 409 and "only admin" in body["error"]
    assert (await call(admin_client, "DELETE", "/-/tarhold/users/admin", ADMIN))[0] == 409
    await call(admin_client, "POST", "/-/tarhold/users", ADMIN, json={"name": "root", "password": PASSWORD, "admin": True})
    assert (await call(admin_client, "PATCH", "/-/tarhold/users/admin", ADMIN, json={"admin": False}))[0] == 200
    assert (await call(admin_client, "GET", "/-/tarhold/users", ADMIN))[0] == 403


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"name": "admin", "password": PASSWORD}, 409, "already exists"),
    ({"name": "Bad Name", "password": PASSWORD}, 400, "invalid user name"),
    ({"name": "bob", "password": "short"}, 400, "at least 8"),
    ({"name": "bob"}, 400, "password is required"),
    ({"name": "bob", "password": PASSWORD, "role": "x"}, 400, "unknown field 'role'"),
    ({"name": "bob", "password": PASSWORD, "admin": "yes"}, 400, "admin must be"),
    ({"name": "bob", "password": PASSWORD, "email": "nope"}, 400, "email"),
])
async def test_bad_user_bodies_are_refused_with_a_message(
    admin_client: TestClient, body: dict[str, Any], status: int, message: str
) -> None:
    got, answer = await call(admin_client, "POST", "/-/tarhold/users", ADMIN, json=body)
    assert got == status and message in answer["error"]


# -- tokens --------------------------------------------------------------------


async def test_admin_creates_lists_and_revokes_tokens_of_any_user(admin_client: TestClient) -> None:
    await add_user(admin_client, "alice")
    status, created = await call(admin_client, "POST", "/-/tarhold/tokens", ADMIN, json={
        "user": "alice", "grants": ["pkg:read+write=@acme/*", "user:read=~alice"], "expires": "30d",
        "cidr_whitelist": ["127.0.0.0/8"], "rate_limit": 120, "name": "ci",
    })
    assert status == 201, created
    token, key = created["token"], created["key"]
    assert created["grants"] == ["pkg:read+write=@acme/*", "user:read=~alice"]
    assert created["rate_limit"] == 120 and created["expires"].endswith("Z") and created["name"] == "ci"
    assert created["cidr_whitelist"] == ["127.0.0.0/8"]
    assert (await call(admin_client, "GET", "/-/whoami", bearer(token)))[1] == {"username": "alice"}

    status, listed = await call(admin_client, "GET", "/-/tarhold/tokens?user=alice", ADMIN)
    assert status == 200 and listed["total"] == 2  # npm adduser's token and this one
    mine = next(t for t in listed["tokens"] if t["key"] == key)
    assert mine["token"] == token[:6] + "…" and token not in str(listed) and "hash" not in mine
    everyone = (await call(admin_client, "GET", "/-/tarhold/tokens", ADMIN))[1]
    assert {t["user"] for t in everyone["tokens"]} == {"alice"}

    status, revoked = await call(admin_client, "DELETE", f"/-/tarhold/tokens/alice/{key}", ADMIN)
    assert status == 200 and revoked == {"ok": True, "user": "alice", "key": key}
    assert await whoami_status(admin_client, token) == 401
    assert (await call(admin_client, "DELETE", f"/-/tarhold/tokens/alice/{key}", ADMIN))[0] == 404


async def test_token_lifetimes_and_dates(admin_client: TestClient) -> None:
    async def expiry(value: Any) -> float:
        status, body = await call(admin_client, "POST", "/-/tarhold/tokens", ADMIN, json={"user": "admin", "expires": value})
        assert status == 201, body
        return datetime.fromisoformat(body["expires"].replace("Z", "+00:00")).timestamp() - time.time()

    assert 12 * 3600 - 60 < await expiry("12h") <= 12 * 3600
    assert 7 * 86400 - 60 < await expiry(7) <= 7 * 86400
    assert 86400 * 365 < await expiry(f"{time.gmtime().tm_year + 2}-01-01")


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"user": "nobody"}, 404, "no such user"),
    ({"user": "admin", "grants": ["pkg:write=*"]}, 400, "invalid grant"),
    ({"user": "admin", "grants": ["user:read=@acme/*"]}, 400, "a user grant names"),
    ({"user": "admin", "grants": []}, 400, "at least one grant"),
    ({"user": "admin", "expires": "soon"}, 400, "expires"),
    ({"user": "admin", "expires": "2001-01-01"}, 400, "expires"),
    ({"user": "admin", "expires": "10s"}, 400, "between 1 minute"),
    ({"user": "admin", "cidr_whitelist": ["10.0.0.0/99"]}, 400, "invalid CIDR"),
    ({"user": "admin", "rate_limit": 0}, 400, "rate_limit"),
    ({"grants": ["pkg:read=*"]}, 400, "user is required"),
])
async def test_bad_token_requests_are_refused_with_a_message(
    admin_client: TestClient, body: dict[str, Any], status: int, message: str
) -> None:
    got, answer = await call(admin_client, "POST", "/-/tarhold/tokens", ADMIN, json=body)
    assert got == status and message in answer["error"], answer


# -- bootstrap -----------------------------------------------------------------


async def test_no_admin_exists_without_the_environment(make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TARHOLD_ADMIN_PASSWORD", "TARHOLD_ADMIN_TOKEN", "TARHOLD_ADMIN_USER"):
        monkeypatch.delenv(name, raising=False)
    client = await make_client()
    assert (await call(client, "GET", "/-/tarhold/users", ADMIN))[0] == 401
    assert (await call(client, "GET", "/-/tarhold/users", basic("admin", "admin")))[0] == 401


async def test_bootstrap_from_the_password_is_idempotent_across_restarts(
    admin_env: pytest.MonkeyPatch, make_client: MakeClient
) -> None:
    first = await make_client()
    assert await users_of(first) == {"admin": (await users_of(first))["admin"]}
    assert (await users_of(first))["admin"]["admin"] is True
    # The operator changes the password; a restart with the old one in the environment keeps it.
    await call(first, "PATCH", "/-/tarhold/users/admin", ADMIN, json={"password": "changed by the operator"})
    again = await make_client()
    assert (await call(again, "GET", "/-/tarhold/users", ADMIN))[0] == 401
    status, body = await call(again, "GET", "/-/tarhold/users", basic("admin", "changed by the operator"))
    assert status == 200 and [u["name"] for u in body["users"]] == ["admin"]


async def test_bootstrap_registers_the_operators_token_once(
    admin_env: pytest.MonkeyPatch, make_client: MakeClient
) -> None:
    admin_env.setenv("TARHOLD_ADMIN_TOKEN", ADMIN_TOKEN)
    admin_env.setenv("TARHOLD_ADMIN_USER", "ops")
    await make_client()
    client = await make_client()
    status, body = await call(client, "GET", "/-/tarhold/tokens", bearer(ADMIN_TOKEN))
    assert status == 200
    assert [(t["user"], t["name"], t["grants"], t["readonly"]) for t in body["tokens"]] == [
        ("ops", "TARHOLD_ADMIN_TOKEN", None, False)
    ]
    assert (await call(client, "GET", "/-/whoami", basic("ops", ADMIN_PASSWORD)))[0] == 200


async def test_a_token_alone_creates_an_admin_without_a_usable_password(
    monkeypatch: pytest.MonkeyPatch, make_client: MakeClient
) -> None:
    monkeypatch.delenv("TARHOLD_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("TARHOLD_ADMIN_USER", raising=False)
    monkeypatch.setenv("TARHOLD_ADMIN_TOKEN", ADMIN_TOKEN)
    client = await make_client()
    status, body = await call(client, "GET", "/-/tarhold/users", bearer(ADMIN_TOKEN))
    assert status == 200 and [(u["name"], u["admin"]) for u in body["users"]] == [("admin", True)]


async def test_an_existing_non_admin_account_is_never_promoted(
    monkeypatch: pytest.MonkeyPatch, make_client: MakeClient
) -> None:
    monkeypatch.delenv("TARHOLD_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("TARHOLD_ADMIN_TOKEN", raising=False)
    squatter = await add_user(await make_client(), "admin", "squatters password")
    monkeypatch.setenv("TARHOLD_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("TARHOLD_ADMIN_TOKEN", ADMIN_TOKEN)
    client = await make_client()
    assert (await call(client, "GET", "/-/tarhold/users", bearer(squatter)))[0] == 403
    assert (await call(client, "GET", "/-/tarhold/users", bearer(ADMIN_TOKEN)))[0] == 401
    assert (await call(client, "GET", "/-/tarhold/users", ADMIN))[0] == 401


async def test_no_second_admin_from_the_environment_once_one_exists(
    admin_env: pytest.MonkeyPatch, make_client: MakeClient
) -> None:
    admin_env.setenv("TARHOLD_ADMIN_USER", "root")
    first = await make_client()
    admin_env.setenv("TARHOLD_ADMIN_USER", "admin")
    second = await make_client()
    status, body = await call(second, "GET", "/-/tarhold/users", basic("root", ADMIN_PASSWORD))
    assert status == 200 and [u["name"] for u in body["users"]] == ["root"]
    assert (await call(first, "GET", "/-/tarhold/users", ADMIN))[0] == 401


async def test_instances_starting_at_once_create_one_admin(
    admin_env: pytest.MonkeyPatch, make_client: MakeClient
) -> None:
    admin_env.setenv("TARHOLD_ADMIN_TOKEN", ADMIN_TOKEN)
    clients = await asyncio.gather(*(make_client() for _ in range(4)))
    for client in clients:
        status, body = await call(client, "GET", "/-/tarhold/users", bearer(ADMIN_TOKEN))
        assert status == 200 and [(u["name"], u["admin"]) for u in body["users"]] == [("admin", True)]
        tokens = (await call(client, "GET", "/-/tarhold/tokens", ADMIN))[1]["tokens"]
        assert len(tokens) == 1


@pytest.mark.parametrize(("name", "value", "message"), [
    ("TARHOLD_ADMIN_TOKEN", "too-short", "TARHOLD_ADMIN_TOKEN"),
    ("TARHOLD_ADMIN_PASSWORD", "short", "TARHOLD_ADMIN_PASSWORD"),
    ("TARHOLD_ADMIN_USER", "Not A Name", "TARHOLD_ADMIN_USER"),
])
def test_a_bad_bootstrap_variable_stops_the_start(
    admin_env: pytest.MonkeyPatch, tmp_path: Any, name: str, value: str, message: str
) -> None:
    admin_env.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        create_app(parse_config({"storage": str(tmp_path)}))
