"""One publish cannot break search for everyone (issue 14, items 4 and 11), on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import DATABASE

from .conftest import MakeClient
from .packages import path_of, publish, publish_body
from .users import add_user, bearer

BAD_FIELDS = [
    ("description", -1),
    ("keywords", "not a list"),
    ("keywords", [1, 2]),
    ("author", 3),
    ("maintainers", [{"email": "no-name@example.com"}]),
    ("license", ["MIT"]),
    ("repository", 7),
    ("bin", ["cli.js"]),
    ("dependencies", ["left-pad"]),
    ("dependencies", {"left-pad": 1}),
    ("scripts", {"test": ["jest"]}),
    ("homepage", {"url": "x"}),
    ("description", "x" * 20_000),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_FIELDS)])
async def test_a_manifest_field_of_the_wrong_shape_is_422_naming_it(
    client: TestClient, alice: str, field: str, value: Any
) -> None:
    body = publish_body("shapes", "1.0.0")
    body["versions"]["1.0.0"][field] = value
    response = await client.put(path_of("shapes"), json=body, headers=bearer(alice))
    assert response.status == 422
    assert (await response.json())["error"].startswith(f"{field}")
    assert (await client.get(path_of("shapes"))).status == 404  # nothing stored


async def test_npm_shaped_fields_are_accepted(client: TestClient, alice: str) -> None:
    assert await publish(
        client, alice, "shapely", "1.0.0",
        keywords=["a", "b"], author={"name": "A", "email": "a@example.com"}, license="MIT",
        repository={"type": "git", "url": "git+https://example.com/a.git"}, bin={"shapely": "cli.js"},
        dependencies={"left-pad": "^1.0.0"}, bugs="https://example.com/issues", homepage="https://example.com",
    ) == 201


async def test_search_and_the_web_ui_read_any_stored_entry(make_client: MakeClient) -> None:
    client = await make_client()
    token = await add_user(client, "alice")
    assert await publish(client, token, "findable", "1.0.0") == 201
    database = client.app[DATABASE]
    # Entries an older tarhold wrote, or a hand-edited table, may hold anything.
    await database.put("PACKAGE", "broken-a", {"description": -1, "keywords": [{}], "version": 3})
    await database.put("PACKAGE", "broken-b", {"maintainers": "x", "links": [], "publisher": 1, "local": True})
    await database.put("PACKAGE", "broken-c", {"local": True, "modified": {"a": 1}, "date": 5})
    # An instance started now reads them into its index with the rest of the list.
    client = await make_client()
    for path in ["/-/v1/search?text=findable", "/-/v1/search?text=broken", "/-/web/search?q=broken", "/"]:
        response = await client.get(path)
        assert response.status == 200, (path, await response.text())
    found = await (await client.get("/-/v1/search?text=findable")).json()
    assert [o["package"]["name"] for o in found["objects"]] == ["findable"]
    broken = await (await client.get("/-/v1/search?text=broken")).json()
    assert [o["package"]["name"] for o in broken["objects"]] == ["broken-a", "broken-b", "broken-c"]
    assert "broken-b" in await (await client.get("/")).text()


async def test_package_list_entries_are_small_whatever_the_packument_holds(make_client: MakeClient) -> None:
    client = await make_client(max_body_size="20mb")
    token = await add_user(client, "alice")
    keywords = [f"keyword-{i}" for i in range(900)]
    assert await publish(client, token, "wordy", "1.0.0", keywords=keywords, description="d" * 16_000) == 201
    entry = await client.app[DATABASE].get("PACKAGE", "wordy")
    assert len(entry["keywords"]) == 32 and len(entry["description"]) == 1024
    assert len(str(entry)) < 8 * 1024
