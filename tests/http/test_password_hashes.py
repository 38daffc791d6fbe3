"""Password hashes made with less scrypt work are upgraded at the next successful login
(issue 14, hardening), on every backend."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from registry.domain import passwords
from registry.domain.users import PROFILE_SK, user_pk
from registry.http.appkeys import DATABASE

from .users import PASSWORD, add_user, adduser_body, basic, user_path


@pytest.mark.production_password_cost
async def test_an_older_hash_is_rehashed_with_the_current_work_at_login(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as older:
        older.setattr(passwords, "SCRYPT_P", 1)  # what tarhold used to store
        await add_user(client, "alice")
    database = client.app[DATABASE]
    before = (await database.get(user_pk("alice"), PROFILE_SK))["password"]
    assert before.startswith("scrypt$16384$8$1$")

    wrong = await client.put(user_path("alice"), json=adduser_body("alice", "not the password"))
    assert wrong.status == 401
    assert (await database.get(user_pk("alice"), PROFILE_SK))["password"] == before  # only a right one

    assert (await client.get("/-/whoami", headers=basic("alice", PASSWORD))).status == 200
    after = (await database.get(user_pk("alice"), PROFILE_SK))["password"]
    assert after.startswith("scrypt$16384$8$5$")
    assert (await client.put(user_path("alice"), json=adduser_body("alice"))).status == 201
