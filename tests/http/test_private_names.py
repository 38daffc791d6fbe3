"""A write never tells whether a private name exists (issue 14, item 7), on every backend.

The review: an anonymous PUT, DELETE or dist-tag request on an existing
private package answered 401, on a missing one 404. Now a caller answers
the same for "does not exist" and "exists, but you may not see it".
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .conftest import MakeClient
from .packages import path_of, publish, publish_body
from .users import add_user, bearer

PRIVATE = {
    "packages": {
        "@private/*": {"access": "alice", "publish": "alice", "unpublish": "alice"},
        "**": {"access": "$all", "publish": "$authenticated"},
    }
}
EXISTING, MISSING = "@private/secret", "@private/nothing"


def requests_for(name: str) -> list[tuple[str, str, Any]]:
    """Every write npm sends for a package (method, path, JSON body)."""
    path = path_of(name)
    tarball = f"{name.split('/')[-1]}-1.0.0.tgz"
    return [
        ("PUT", f"{path}/-rev/1-abc", {"_id": name, "name": name, "versions": {}}),
        ("PUT", f"{path}/-rev/1-abc", {"_id": name, "_rev": "1-abc", "users": {"bob": True}}),
        ("PUT", path, {"_id": name, "name": name, "versions": {}}),
        ("DELETE", f"{path}/-rev/1-abc", None),
        ("DELETE", f"{path}/-/{tarball}/-rev/1-abc", None),
        ("PUT", f"/-/package/{path[1:]}/dist-tags/next", "1.0.0"),
        ("POST", f"/-/package/{path[1:]}/dist-tags", {"next": "1.0.0"}),
        ("DELETE", f"/-/package/{path[1:]}/dist-tags/next", None),
        ("GET", f"/-/package/{path[1:]}/dist-tags", None),
        ("PUT", f"{path}/next", "1.0.0"),
    ]


async def answer(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, str]:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    response = await client.request(method, path, **kwargs)
    data = await response.json() if response.content_type == "application/json" else {}
    # The same answer means the same status and message, the name aside.
    return response.status, str(data.get("error", "")).replace(EXISTING, "NAME").replace(MISSING, "NAME")


@pytest.fixture
async def private_registry(make_client: MakeClient) -> tuple[TestClient, dict[str, dict[str, str]]]:
    client = await make_client(**PRIVATE)
    alice = await add_user(client, "alice")
    assert await publish(client, alice, EXISTING, "1.0.0") == 201
    bob = await add_user(client, "bob")
    return client, {"anonymous": {}, "bob": bearer(bob)}


@pytest.mark.parametrize("who", ["anonymous", "bob"])
async def test_existing_and_missing_private_names_answer_alike(
    private_registry: tuple[TestClient, dict[str, dict[str, str]]], who: str
) -> None:
    client, callers = private_registry
    headers = callers[who]
    for (method, path, body), (_, missing_path, missing_body) in zip(
        requests_for(EXISTING), requests_for(MISSING), strict=True
    ):
        existing = await answer(client, method, path, body, headers)
        missing = await answer(client, method, missing_path, missing_body, headers)
        assert existing == missing, f"{who} {method} {path}"
        assert existing[0] in {401, 403, 404}, f"{who} {method} {path}: {existing}"
    # And nothing changed: alice still sees her package as published.
    alice_view = await client.get(path_of(EXISTING), headers=bearer(await add_user(client, "alice")))
    assert list((await alice_view.json())["versions"]) == ["1.0.0"]


async def test_a_publish_to_a_private_name_answers_alike_too(
    private_registry: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, callers = private_registry
    for headers in callers.values():
        existing = await client.put(path_of(EXISTING), json=publish_body(EXISTING, "2.0.0"), headers=headers)
        missing = await client.put(path_of(MISSING), json=publish_body(MISSING, "2.0.0"), headers=headers)
        assert existing.status == missing.status
        assert existing.status in {401, 403}
