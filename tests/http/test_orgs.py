"""npm org, npm team and npm access over HTTP, on every backend: who may change what, and
what the lists show to whom. The grant matrix is test_org_matrix.py; the npm CLI's side,
tests/e2e/test_npm_orgs.py."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.domain.org_store import create_org
from registry.http.appkeys import DATABASE
from registry.http.org_directory import reload

from .conftest import MakeClient
from .otp_helpers import assert_asks_for_otp, enable_2fa, with_otp
from .packages import path_of, publish_body
from .users import add_user, bearer


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()


async def call(client: TestClient, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    headers = bearer(token) if token else {}
    response = await client.request(method, path, json=body, headers=headers)
    text = await response.text()
    return response.status, (await response.json()) if text and response.content_type == "application/json" else text


async def org_with(client: TestClient) -> dict[str, str]:
    tokens = {name: await add_user(client, name) for name in ("olga", "adam", "dev", "eve")}
    await create_org(client.server.app[DATABASE], "acme", "olga")
    await reload(client.server.app)
    assert (await call(client, "PUT", "/-/org/acme/user", tokens["olga"], {"user": "adam", "role": "admin"}))[0] == 200
    assert (await call(client, "PUT", "/-/org/acme/user", tokens["adam"], {"user": "dev"}))[0] == 200
    return tokens


async def test_members_and_roles_as_npm_org_manages_them(client: TestClient) -> None:
    t = await org_with(client)
    assert (await call(client, "GET", "/-/org/acme/user", t["dev"])) == (
        200, {"adam": "admin", "dev": "developer", "olga": "owner"})
    for who, body, status in [
        ("dev", {"user": "eve"}, 403),  # developers do not manage members
        ("adam", {"user": "eve", "role": "owner"}, 403),  # only owners make owners
        ("olga", {"user": "nobody"}, 404),
        ("olga", {"user": "eve", "role": "boss"}, 400),
        ("eve", {"user": "eve"}, 403),
    ]:
        assert (await call(client, "PUT", "/-/org/acme/user", t[who], body))[0] == status, (who, body)
    assert (await call(client, "GET", "/-/org/acme/user", t["eve"]))[0] == 403
    assert (await call(client, "GET", "/-/org/acme/user", None))[0] == 401
    assert (await call(client, "GET", "/-/org/nope/user", t["olga"]))[0] == 404
    assert (await call(client, "DELETE", "/-/org/acme/user", t["olga"], {"user": "olga"}))[0] == 409  # last owner
    status, body = await call(client, "PUT", "/-/org/acme/user", t["olga"], {"user": "eve", "role": "developer"})
    assert (status, body) == (200, {"org": {"name": "acme", "size": 4}, "user": "eve", "role": "developer"})
    assert (await call(client, "GET", "/-/team/acme/developers/user", t["eve"])) == (200, ["adam", "dev", "eve", "olga"])
    assert (await call(client, "DELETE", "/-/org/acme/user", t["adam"], {"user": "eve"}))[0] == 204
    assert (await call(client, "GET", "/-/team/acme/developers/user", t["dev"])) == (200, ["adam", "dev", "olga"])


async def test_teams_and_grants_as_npm_team_and_npm_access_change_them(client: TestClient) -> None:
    t = await org_with(client)
    status, _ = await call(client, "PUT", path_of("@acme/ui"), t["dev"], {**publish_body("@acme/ui", "1.0.0")})
    assert status == 201
    assert (await call(client, "PUT", "/-/org/acme/team", t["dev"], {"name": "web"}))[0] == 403
    assert (await call(client, "PUT", "/-/org/acme/team", t["adam"], {"name": "web"}))[0] == 201
    assert (await call(client, "PUT", "/-/org/acme/team", t["adam"], {"name": "web"}))[0] == 409
    assert (await call(client, "PUT", "/-/org/acme/team", t["adam"], {"name": "Bad Name"}))[0] == 400
    assert (await call(client, "GET", "/-/org/acme/team", t["dev"])) == (200, ["acme:developers", "acme:web"])
    assert (await call(client, "PUT", "/-/team/acme/web/user", t["adam"], {"user": "eve"}))[0] == 404  # not a member
    assert (await call(client, "PUT", "/-/team/acme/web/user", t["adam"], {"user": "dev"}))[0] == 201
    grant = {"package": "@acme/ui", "permissions": "read-only"}
    assert (await call(client, "PUT", "/-/team/acme/web/package", t["dev"], grant))[0] == 403
    assert (await call(client, "PUT", "/-/team/acme/web/package", t["adam"], grant))[0] == 201
    outside = {"package": "left-pad", "permissions": "read-only"}
    assert (await call(client, "PUT", "/-/team/acme/web/package", t["adam"], outside))[0] == 400
    missing = {"package": "@acme/missing", "permissions": "read-write"}
    assert (await call(client, "PUT", "/-/team/acme/web/package", t["adam"], missing))[0] == 404
    assert (await call(client, "GET", "/-/team/acme/web/package", t["dev"])) == (200, {"@acme/ui": "read"})
    assert (await call(client, "GET", "/-/org/acme/package", t["dev"])) == (200, {"@acme/ui": "write"})
    # The package was created by a member: private, and `developers` may write it.
    assert (await call(client, "GET", "/-/package/@acme%2fui/visibility", t["dev"])) == (200, {"public": False})
    assert (await call(client, "GET", "/-/package/@acme%2fui/visibility", None))[0] == 404
    collaborators = await call(client, "GET", "/-/package/@acme%2fui/collaborators", t["dev"])
    assert collaborators == (200, {"olga": "write", "adam": "write", "dev": "write"})
    assert (await call(client, "GET", "/-/user/dev/package", t["dev"])) == (200, {"@acme/ui": "write"})
    assert (await call(client, "GET", "/-/user/dev/package", t["eve"])) == (200, {})  # private: not shown
    assert (await call(client, "DELETE", "/-/team/acme/web/package", t["adam"], {"package": "@acme/ui"}))[0] == 200
    assert (await call(client, "DELETE", "/-/team/acme/developers", t["olga"]))[0] == 400
    assert (await call(client, "DELETE", "/-/team/acme/web", t["adam"]))[0] == 204
    assert (await call(client, "GET", "/-/org/acme/team", t["dev"])) == (200, ["acme:developers"])


async def test_visibility_is_set_by_owners_and_writers_with_their_code(client: TestClient) -> None:
    t = await org_with(client)
    assert (await call(client, "PUT", path_of("@acme/ui"), t["dev"], publish_body("@acme/ui", "1.0.0")))[0] == 201
    assert (await client.get(path_of("@acme/ui"), headers=bearer(t["eve"]))).status == 404
    assert (await call(client, "POST", "/-/package/@acme%2fui/access", t["eve"], {"access": "public"}))[0] == 404
    app = await enable_2fa(client, t["dev"])
    await assert_asks_for_otp(await client.post(
        "/-/package/@acme%2fui/access", json={"access": "public"}, headers=bearer(t["dev"])))
    response = await client.post("/-/package/@acme%2fui/access", json={"access": "public"},
                                 headers=with_otp(t["dev"], app.code()))
    assert response.status == 200, await response.text()
    assert (await client.get(path_of("@acme/ui"), headers=bearer(t["eve"]))).status == 200
    assert (await client.get(path_of("@acme/ui"))).status == 200
    assert (await call(client, "POST", "/-/package/left-pad/access", t["eve"], {"access": "public"}))[0] == 400
