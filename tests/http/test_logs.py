"""Log lines: the request id on every line of a request, and no secret on any line."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from registry.config import LogConfig, parse_config
from registry.http.app import SERVER_KWARGS, create_app
from registry.http.logs import configure_logging
from tests.support.fake_upstream import FakeUpstream

PASSWORD = "correct horse battery staple"
WRONG_PASSWORD = "tr0ub4dor&3-not-it"
PRETTY_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) +\[([^\]]*)\] (\S+): (.*)$")


class Captured:
    """The formatted log output of one test, split into records."""

    def __init__(self, format: str) -> None:
        self.format = format
        self.stream = io.StringIO()

    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        """One dict per log line: request_id, logger, msg (a pretty traceback stays with its line)."""
        records: list[dict[str, Any]] = []
        for line in self.text().splitlines():
            if self.format == "json":
                entry = orjson.loads(line)
                records.append({"request_id": entry["request_id"], "logger": entry["logger"], "msg": entry["msg"]})
                continue
            match = PRETTY_LINE.match(line)
            if match is None:
                assert records, f"a line that is neither a log line nor a traceback: {line!r}"
                continue  # a traceback line of the record before
            records.append({"request_id": match[2], "logger": match[3], "msg": match[4]})
        return records


@contextmanager
def capture_logs(format: str) -> Iterator[Captured]:
    """configure_logging() into a buffer; the test process's handlers come back afterwards."""
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    quieted = {name: logging.getLogger(name).level for name in ("botocore", "aiobotocore", "aiohttp.access")}
    capture = Captured(format)
    configure_logging(LogConfig(format=format, level=logging.DEBUG), stream=capture.stream)
    try:
        yield capture
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture(params=["json", "pretty"])
def captured(request: pytest.FixtureRequest) -> Iterator[Captured]:
    with capture_logs(str(request.param)) as capture:
        yield capture


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        fake.fail("broken", 500)
        yield fake


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, upstream: FakeUpstream, captured: Captured) -> TestClient:
    config = parse_config({
        "storage": str(tmp_path / "storage"),
        "uplinks": {"up": {"url": upstream.url, "timeout": "5s"}},
        "packages": {"**": {"access": "$all", "publish": "$authenticated", "proxy": "up"}},
    })
    server = TestServer(create_app(config))
    await server.start_server(**SERVER_KWARGS)
    return await aiohttp_client(server)


async def access_line(captured: Captured, request_id: str) -> dict[str, Any]:
    """The access line of a request, once the server wrote it (after the body went out)."""
    for _ in range(200):
        for record in captured.records():
            if record["logger"] == "tarhold.access" and record["request_id"] == request_id:
                return record
        await asyncio.sleep(0.01)
    raise AssertionError(f"no access line for request {request_id}")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_every_line_of_a_request_carries_its_id_and_no_line_a_secret(
    client: TestClient, captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = len(captured.records())
    sent: dict[str, str] = {}  # request id -> the path the access line must show
    secrets: list[str] = [PASSWORD, WRONG_PASSWORD, basic("alice", PASSWORD), basic("alice", WRONG_PASSWORD)]

    async def call(request_id: str, method: str, path: str, logged_path: str | None = None,
                   **kwargs: Any) -> Any:
        headers = {"X-Request-Id": request_id, **kwargs.pop("headers", {})}
        response = await client.request(method, path, headers=headers, **kwargs)
        body = await response.read()
        assert response.headers["X-Request-Id"] == request_id
        sent[request_id] = logged_path or path
        line = await access_line(captured, request_id)
        assert f"{method} {logged_path or path} {response.status} " in line["msg"]
        return response.status, orjson.loads(body) if body.startswith(b"{") else body

    user_path = "/-/user/org.couchdb.user:alice"
    adduser = {"_id": "org.couchdb.user:alice", "name": "alice", "password": PASSWORD,
               "email": "alice@example.com", "type": "user", "roles": []}
    status, body = await call("adduser-1", "PUT", user_path, json=adduser)
    assert status == 201
    login_token = body["token"]
    secrets.append(login_token)
    wrong = {**adduser, "password": WRONG_PASSWORD}
    status, _ = await call("login-wrong-2", "PUT", user_path, json=wrong)
    assert status == 401
    status, body = await call("whoami-3", "GET", "/-/whoami", headers={"Authorization": f"Bearer {login_token}"})
    assert status == 200 and body == {"username": "alice"}
    status, _ = await call("whoami-basic-4", "GET", "/-/whoami", headers={"Authorization": basic("alice", PASSWORD)})
    assert status == 200
    status, _ = await call("whoami-bad-5", "GET", "/-/whoami",
                           headers={"Authorization": basic("alice", WRONG_PASSWORD)})
    assert status == 401
    status, body = await call("token-create-6", "POST", "/-/npm/v1/tokens", json={"password": PASSWORD},
                              headers={"Authorization": f"Bearer {login_token}"})
    assert status == 201
    created = body["token"]
    secrets.append(created)
    # `npm token revoke <full token>` and `npm logout` put a token in the path.
    status, _ = await call("token-revoke-7", "DELETE", f"/-/npm/v1/tokens/token/{created}",
                           "/-/npm/v1/tokens/token/***", headers={"Authorization": f"Bearer {login_token}"})
    assert status == 204
    status, _ = await call("uplink-8", "GET", "/broken")  # the mirror logs the uplink's failure
    assert status == 502

    async def bug(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug while logging out")

    monkeypatch.setattr("registry.http.routes_auth.lookup_token", bug)
    status, _ = await call("logout-bug-9", "DELETE", f"/-/user/token/{login_token}", "/-/user/token/***",
                           headers={"Authorization": f"Bearer {login_token}"})
    assert status == 500
    monkeypatch.undo()
    status, _ = await call("logout-10", "DELETE", f"/-/user/token/{login_token}", "/-/user/token/***",
                           headers={"Authorization": f"Bearer {login_token}"})
    assert status == 200

    # A request without an id (or with an unsafe one) gets a fresh one.
    response = await client.get("/-/ping", headers={"X-Request-Id": "bad id\twith spaces"})
    generated = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    await access_line(captured, generated)

    records = captured.records()[started:]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        assert record["request_id"] in {*sent, generated}, f"a line outside any request: {record}"
        by_id.setdefault(record["request_id"], []).append(record)
    assert any("uplink up failed for broken" in r["msg"] for r in by_id["uplink-8"])
    assert any(r["logger"] == "registry.http.app" and "unhandled error in DELETE /-/user/token/***" in r["msg"]
               for r in by_id["logout-bug-9"])
    assert any(r["logger"] == "registry.domain.users" for r in by_id["token-create-6"])  # "created token ..."
    text = captured.text()
    for secret in secrets:
        assert secret not in text
    assert "Bearer" not in text and "Authorization" not in text


def test_json_lines_carry_the_access_fields() -> None:
    with capture_logs("json") as captured:
        logging.getLogger("tarhold.access").info(
            "GET /x 200 5 1.0ms alice",
            extra={"method": "GET", "path": "/x", "status": 200, "bytes": 5, "duration_ms": 1.0, "user": "alice"},
        )
    entry = orjson.loads(captured.text().splitlines()[-1])
    assert entry["request_id"] == "-"
    assert {k: entry[k] for k in ("method", "path", "status", "bytes", "duration_ms", "user")} == {
        "method": "GET", "path": "/x", "status": 200, "bytes": 5, "duration_ms": 1.0, "user": "alice",
    }
    assert entry["level"] == "info" and entry["time"].endswith("Z")


@pytest.mark.parametrize("format", ["json", "pretty"])
def test_credentials_in_a_url_are_masked_in_warnings(format: str) -> None:
    # Built from parts: the test's subject is a URL carrying a user and a password.
    user, password = "ci-bot", "s3cr3t-pass"
    url = "https://" + f"{user}:{password}@upstream.test/@types/node/-/node-1.0.0.tgz"
    with capture_logs(format) as captured:
        logging.getLogger("uplinks.npm").warning(
            "up unreachable for %s: %s", url,
            "ConnectionRefusedError()",
        )
    text = captured.text()
    assert "s3cr3t-pass" not in text and "ci-bot" not in text
    assert "https://***@upstream.test/@types/node/-/node-1.0.0.tgz" in text


@pytest.mark.parametrize(("level", "enabled"), [(logging.INFO, True), (logging.WARNING, False)])
def test_access_lines_are_skipped_whole_when_the_level_hides_them(level: int, enabled: bool) -> None:
    """aiohttp asks `enabled` per connection: False, and it neither times nor logs requests."""
    with capture_logs("json"):
        configure_logging(LogConfig(format="json", level=level), stream=io.StringIO())
        logger = SERVER_KWARGS["access_log_class"](logging.getLogger("tarhold.access"), "")
        assert logger.enabled is enabled
