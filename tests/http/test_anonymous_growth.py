"""Anonymous traffic does not grow the database, and the login page says who asked
(issue 14, items 8 and 14), on every backend.

The review: 300 GETs of random missing names added 300 ACCESS rows, 300
anonymous `POST /-/v1/login` added 300 LOGIN rows, and nothing was ever
swept on SQLite (tests/contract/test_sqlite_hygiene.py covers the sweep).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import DATABASE
from registry.http.usage import ACCESS

from .conftest import MakeClient
from .packages import publish
from .users import add_user


async def rows(client: TestClient, pk: str) -> int:
    return len([item async for item in client.app[DATABASE].query(pk)])


async def test_requests_for_missing_names_record_nothing(client: TestClient) -> None:
    for _ in range(300):
        name = f"missing-{uuid.uuid4().hex[:12]}"
        assert (await client.get(f"/{name}")).status == 404
        assert (await client.get(f"/{name}/-/{name}-1.0.0.tgz")).status == 404
    await client.app[ACCESS].drain()
    assert await rows(client, "ACCESS") == 0


async def test_a_package_that_exists_is_recorded(client: TestClient) -> None:
    token = await add_user(client, "alice")
    assert await publish(client, token, "used", "1.0.0") == 201
    assert (await client.get("/used")).status == 200
    await client.app[ACCESS].drain()
    assert [name async for name, _ in client.app[DATABASE].query("ACCESS")] == ["used"]


async def test_login_sessions_are_limited_per_client_address(make_client: MakeClient) -> None:
    client = await make_client(auth={"trust_forwarded_for": True})
    statuses = []
    for _ in range(300):
        response = await client.post("/-/v1/login", json={}, headers={"X-Forwarded-For": "203.0.113.9"})
        statuses.append(response.status)
    assert statuses[:10] == [200] * 10
    assert statuses.count(429) == 290
    assert await rows(client, "LOGIN") == 10
    other = await client.post("/-/v1/login", json={}, headers={"X-Forwarded-For": "198.51.100.1"})
    assert other.status == 200  # another address is not held up


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
async def test_the_data_directory_stays_small_under_anonymous_traffic(client: TestClient, tmp_path: Path) -> None:
    for i in range(300):
        await client.get(f"/missing-{i}")
        await client.post("/-/v1/login", json={})
    await client.app[ACCESS].drain()
    storage = tmp_path / "storage"
    size = sum(path.stat().st_size for path in storage.rglob("*") if path.is_file())
    assert size < 1024 * 1024, f"{size} bytes"


async def test_the_login_page_says_which_client_asked_and_what_it_gets(make_client: MakeClient) -> None:
    client = await make_client(auth={"trust_forwarded_for": True})
    started = await client.post(
        "/-/v1/login", json={}, headers={"X-Forwarded-For": "203.0.113.77", "User-Agent": "npm/11.6.0 node/v20.20.2"}
    )
    login_url = (await started.json())["loginUrl"]
    page = await (await client.get(login_url[login_url.index("/-/v1/login/"):])).text()
    assert "203.0.113.77" in page
    assert "npm/11.6.0 node/v20.20.2" in page
    assert "all the rights of your account" in page
    assert "npm token list" in page


async def test_the_client_text_on_the_login_page_is_escaped(client: TestClient) -> None:
    started = await client.post("/-/v1/login", json={}, headers={"User-Agent": "<script>alert(1)</script>"})
    login_url = (await started.json())["loginUrl"]
    page = await (await client.get(login_url[login_url.index("/-/v1/login/"):])).text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
