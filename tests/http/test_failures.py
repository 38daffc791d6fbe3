"""Failures leave nothing half-done, and a bug is a 500 with a request id, never a traceback."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import PACKAGES
from storage.base import StorageError

from .conftest import MakeClient
from .packages import publish, publish_body
from .users import add_user, bearer


async def test_a_storage_failure_mid_publish_leaves_no_version_and_no_tarball(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await add_user(client, "alice")
    assert await publish(client, token, "half", "1.0.0") == 201
    store = client.app[PACKAGES].store

    async def broken(*args: Any, **kwargs: Any) -> str:
        raise StorageError("simulated outage")

    monkeypatch.setattr(store, "write_packument", broken)
    response = await client.put("/half", json=publish_body("half", "1.1.0"), headers=bearer(token))
    assert response.status == 503
    assert "request id" in (await response.json())["error"]
    monkeypatch.undo()
    doc = await (await client.get("/half")).json()
    assert list(doc["versions"]) == ["1.0.0"] and doc["dist-tags"] == {"latest": "1.0.0"}
    assert (await client.get("/half/-/half-1.1.0.tgz")).status == 404
    # and the version is free to be published once storage is back
    assert await publish(client, token, "half", "1.1.0") == 201


async def test_a_client_that_hangs_up_mid_upload_publishes_nothing(client: TestClient) -> None:
    token = await add_user(client, "alice")
    data = orjson.dumps(publish_body("cut", "1.0.0"))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = (
        f"PUT /cut HTTP/1.1\r\nHost: {client.host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[: len(data) // 2])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)
    assert (await client.get("/cut")).status == 404
    assert (await client.get("/cut/-/cut-1.0.0.tgz")).status == 404
    assert (await client.get("/-/ping")).status == 200


async def test_a_bug_is_a_500_with_a_request_id_and_no_traceback(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    packages = client.app[PACKAGES]

    async def bug(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(packages, "read", bug)
    caplog.set_level(logging.ERROR)
    response = await client.get("/anything", headers={"X-Request-Id": "req-abc123"})
    assert response.status == 500
    body = await response.json()
    assert body == {"error": "internal error (request id req-abc123)"}
    assert response.headers["X-Request-Id"] == "req-abc123"
    assert "Traceback" not in await response.text()
    assert "ZeroDivisionError" in caplog.text
    assert (await client.get("/-/ping")).status == 200


async def test_no_response_names_the_server_software_versions(client: TestClient) -> None:
    for path in ("/-/ping", "/health", "/no-such-package", "/-/metrics", "/"):
        response = await client.get(path)
        assert response.headers["Server"] == "tarhold", path
        body = await response.text()
        assert "aiohttp/" not in body and "Python/" not in body, path
