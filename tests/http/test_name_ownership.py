"""Names keep their owners: a removed user's name, a fully unpublished package (issue 14, hardening)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from .packages import path_of, publish, publish_body
from .test_admin import ADMIN, admin_client, admin_env, call  # noqa: F401 - fixtures
from .users import PASSWORD, add_user, adduser_body, bearer, user_path

__all__ = ["admin_client", "admin_env"]


async def test_a_fully_unpublished_name_stays_its_last_maintainers(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    bob = await add_user(client, "bob")
    assert await publish(client, alice, "kept", "1.0.0") == 201
    gone = await client.delete(f"{path_of('kept')}/-rev/1-x", headers=bearer(alice))
    assert gone.status == 200
    response = await client.put(path_of("kept"), json=publish_body("kept", "2.0.0"), headers=bearer(bob))
    assert response.status == 403
    assert "only its last maintainers" in (await response.json())["error"]
    assert await publish(client, alice, "kept", "2.0.0") == 201
    assert await publish(client, alice, "kept", "1.0.0") == 403  # a version is never reused


async def test_a_removed_users_name_cannot_be_registered_again(admin_client: TestClient) -> None:
    await add_user(admin_client, "bob")
    status, _ = await call(admin_client, "DELETE", "/-/tarhold/users/bob", ADMIN)
    assert status == 200
    response = await admin_client.put(user_path("bob"), json=adduser_body("bob", "someone else's password"))
    assert response.status == 403
    assert "belonged to a removed user" in (await response.json())["error"]
    # An admin may give the name out again on purpose.
    status, _ = await call(admin_client, "POST", "/-/tarhold/users", ADMIN, json={"name": "bob", "password": PASSWORD})
    assert status == 201
    assert await add_user(admin_client, "bob")
