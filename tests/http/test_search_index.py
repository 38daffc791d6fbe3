"""Search and the front page read the package list's index: a change is found at once on the
instance that made it and within POLL_SECONDS (+ one read) on the others, on both backends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from registry.domain.package_list import POLL_SECONDS
from registry.http.appkeys import DATABASE, PACKAGES

from .conftest import MakeClient
from .packages import packument, publish
from .users import add_user, bearer

# The delay README and the module docstring state for another instance: a poll, then a read.
FOUND_WITHIN = POLL_SECONDS + 2.0


async def names(client: TestClient, text: str, **params: str) -> list[str]:
    response = await client.get("/-/v1/search", params={"text": text, **params})
    assert response.status == 200, await response.text()
    return [o["package"]["name"] for o in (await response.json())["objects"]]


async def eventually(client: TestClient, text: str, expected: list[str]) -> float:
    started = time.monotonic()
    while (found := await names(client, text)) != expected:
        assert time.monotonic() - started < FOUND_WITHIN, found
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def unpublish(client: TestClient, token: str, name: str) -> None:
    doc = await packument(client, name)
    response = await client.delete(f"/{name}/-rev/{doc['_rev']}", headers=bearer(token))
    assert response.status == 200, await response.text()


async def test_a_publish_is_found_at_once_and_an_unpublish_is_gone_at_once(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    assert await publish(client, alice, "fresh-thing", "1.0.0", description="brand new", keywords=["shiny"]) == 201
    assert await names(client, "shiny") == ["fresh-thing"]
    assert "fresh-thing" in await (await client.get("/-/web/search", params={"q": "brand"})).text()
    assert "fresh-thing" in await (await client.get("/")).text()
    await unpublish(client, alice, "fresh-thing")
    assert await names(client, "shiny") == []
    assert "fresh-thing" not in await (await client.get("/")).text()


async def test_a_change_on_another_instance_is_found_within_the_poll(make_client: MakeClient) -> None:
    here, there = await make_client(), await make_client()
    alice = await add_user(here, "alice")
    assert await publish(there, alice, "made-there", "1.0.0", keywords=["elsewhere"]) == 201
    assert await names(there, "elsewhere") == ["made-there"]
    assert await eventually(here, "elsewhere", ["made-there"]) < FOUND_WITHIN
    assert "made-there" in await (await here.get("/")).text()
    await unpublish(there, alice, "made-there")
    await eventually(here, "elsewhere", [])


async def test_an_instance_started_later_finds_what_the_list_already_held(make_client: MakeClient) -> None:
    first = await make_client()
    alice = await add_user(first, "alice")
    for number in range(3):
        assert await publish(first, alice, f"old-{number}", "1.0.0", keywords=["held"]) == 201
    later = await make_client()
    assert await names(later, "held") == ["old-0", "old-1", "old-2"]
    assert (await (await later.get("/-/v1/search", params={"text": "held", "size": "1", "from": "2"})).json())[
        "total"] == 3


async def test_a_page_reads_only_its_own_entries(client: TestClient, monkeypatch: Any) -> None:
    alice = await add_user(client, "alice")
    for number in range(12):
        assert await publish(client, alice, f"many-{number:02d}", "1.0.0", keywords=["many"]) == 201
    database = client.app[DATABASE]
    asked: list[list[str]] = []
    real_get_many = database.get_many

    async def get_many(pk: str, sks: list[str]) -> dict[str, dict[str, Any]]:
        if pk == "PACKAGE":
            asked.append(list(sks))
        return await real_get_many(pk, sks)

    listing = client.app[PACKAGES].listing
    # The log of those publishes applied now: the watch's next poll finds nothing to read
    # back, so every read counted below is the search's own.
    await listing.refresh()
    listing._entries.clear()
    monkeypatch.setattr(database, "get_many", get_many)
    body = await (await client.get("/-/v1/search", params={"text": "many", "size": "3", "from": "4"})).json()
    assert [o["package"]["name"] for o in body["objects"]] == ["many-04", "many-05", "many-06"]
    assert body["total"] == 12
    assert asked == [["many-04", "many-05", "many-06"]]  # one batch read, of the page only
    await client.get("/-/v1/search", params={"text": "many", "size": "3", "from": "4"})
    assert len(asked) == 1  # and held for the next reader


async def test_what_a_rule_hides_is_neither_listed_nor_counted(make_client: MakeClient) -> None:
    client = await make_client(packages={
        "@private/*": {"access": "$authenticated", "publish": "$authenticated"},
        "**": {"access": "$all", "publish": "$authenticated"},
    })
    alice = await add_user(client, "alice")
    for name in ("@private/thing", "public-thing"):
        assert await publish(client, alice, name, "1.0.0", keywords=["thing"]) == 201
    anonymous = await (await client.get("/-/v1/search", params={"text": "thing"})).json()
    assert [o["package"]["name"] for o in anonymous["objects"]] == ["public-thing"] and anonymous["total"] == 1
    signed_in = await (await client.get("/-/v1/search", params={"text": "thing"}, headers=bearer(alice))).json()
    assert [o["package"]["name"] for o in signed_in["objects"]] == ["@private/thing", "public-thing"]
    assert signed_in["total"] == 2
    assert "@private/thing" not in await (await client.get("/")).text()
