"""Password guessing is slowed on every channel, shared between them, without locking the owner out
(issue 14, item 3), on every backend.

The review sent 60 wrong passwords in about 3 s with no throttling. The
test client always comes from 127.0.0.1; `auth.trust_forwarded_for` lets a
request name another client address, as a load balancer would.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from registry.http.metrics import metrics

from .conftest import MakeClient
from .users import PASSWORD, add_user, adduser_body, basic, bearer, user_path

ATTACKER = {"X-Forwarded-For": "203.0.113.66"}
OWNER = {"X-Forwarded-For": "198.51.100.7"}


async def guessing_registry(make_client: MakeClient) -> tuple[TestClient, str]:
    client = await make_client(auth={"trust_forwarded_for": True})
    token = await add_user(client, "alice", **OWNER)
    return client, token


def throttled_count(channel: str) -> float:
    return metrics().sign_ins.labels(channel, "throttled")._value.get()


async def test_sixty_wrong_passwords_are_mostly_refused_before_any_check(make_client: MakeClient) -> None:
    client, _ = await guessing_registry(make_client)
    before = throttled_count("basic")
    statuses = []
    for i in range(60):
        response = await client.get("/-/whoami", headers={**basic("alice", f"guess-{i}"), **ATTACKER})
        statuses.append(response.status)
        if response.status == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert "too many failed sign-ins" in (await response.json())["error"]
    assert statuses[:5] == [401] * 5
    assert statuses.count(429) >= 50
    assert throttled_count("basic") - before == statuses.count(429)


async def test_the_owner_signs_in_from_another_address_during_the_attack(make_client: MakeClient) -> None:
    client, _ = await guessing_registry(make_client)
    for i in range(20):
        await client.get("/-/whoami", headers={**basic("alice", f"guess-{i}"), **ATTACKER})
    attacker_right = await client.get("/-/whoami", headers={**basic("alice", PASSWORD), **ATTACKER})
    assert attacker_right.status == 429  # even the right password waits at the attacker's address
    owner = await client.get("/-/whoami", headers={**basic("alice", PASSWORD), **OWNER})
    assert owner.status == 200
    assert (await owner.json())["username"] == "alice"


async def test_the_channels_share_one_throttle(make_client: MakeClient) -> None:
    client, token = await guessing_registry(make_client)
    for i in range(6):  # through Basic auth
        await client.get("/-/whoami", headers={**basic("alice", f"guess-{i}"), **ATTACKER})
    login = await client.put(user_path("alice"), json=adduser_body("alice", "another guess"), headers=ATTACKER)
    assert login.status == 429  # npm login from the same address waits too
    token_create = await client.post(
        "/-/npm/v1/tokens", json={"password": "a guess"}, headers={**bearer(token), **ATTACKER}
    )
    assert token_create.status == 429
    web = await client.post("/-/web/login", data={"username": "alice", "password": "x" * 9}, headers=ATTACKER)
    assert web.status == 429


async def test_unknown_names_are_throttled_alike(make_client: MakeClient) -> None:
    client, _ = await guessing_registry(make_client)
    answers = set()
    for name in ("alice", "nobody-here"):
        for i in range(8):
            response = await client.get("/-/whoami", headers={**basic(name, f"guess-{i}"), "X-Forwarded-For": f"192.0.2.{len(name)}"})
            answers.add((name, i, response.status))
    assert {status for name, i, status in answers if name == "alice"} == {status for name, i, status in answers if name != "alice"}
