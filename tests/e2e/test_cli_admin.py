"""`tarhold user ...` and `tarhold token ...` on embedded storage, checked over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.config import parse_config
from registry.http.app import create_app
from tests.http.users import PASSWORD, basic, bearer

TARHOLD = str(Path(sys.executable).with_name("tarhold"))


@pytest.fixture(autouse=True)
def no_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TARHOLD_ADMIN_PASSWORD", "TARHOLD_ADMIN_TOKEN", "TARHOLD_ADMIN_USER", "TARHOLD_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "storage"


def tarhold(storage: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `tarhold ARGS --storage STORAGE`."""
    return subprocess.run(
        [TARHOLD, *args, "--storage", str(storage)], input=stdin, capture_output=True, text=True,
        timeout=60, env={**os.environ, "TARHOLD_CONFIG": ""},
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


async def client_on(storage: Path, aiohttp_client: Any) -> TestClient:
    """A fresh app on the same storage (fresh: no token cached from an earlier request)."""
    client: TestClient = await aiohttp_client(create_app(parse_config({"storage": str(storage)})))
    return client


async def status_of(client: TestClient, path: str, headers: dict[str, str]) -> int:
    response = await client.get(path, headers=headers)
    await response.read()
    return response.status


async def test_user_add_list_passwd_and_remove(storage: Path, aiohttp_client: Any) -> None:
    assert "created admin user root" in ok(tarhold(storage, "user", "add", "root", "--admin", "--password-stdin", stdin=PASSWORD + "\n"))
    ok(tarhold(storage, "user", "add", "alice", "--email", "alice@example.com", "--password-stdin", stdin=PASSWORD + "\n"))
    listing = ok(tarhold(storage, "user", "list"))
    assert listing.splitlines()[0].split() == ["NAME", "ADMIN", "EMAIL", "CREATED"]
    assert [line.split()[:2] for line in listing.splitlines()[1:]] == [["alice", "alice@example.com"], ["root", "yes"]]
    users = json.loads(ok(tarhold(storage, "user", "list", "--json")))
    assert [(u["name"], u["admin"], u["email"]) for u in users] == [
        ("alice", False, "alice@example.com"), ("root", True, None),
    ]

    client = await client_on(storage, aiohttp_client)
    assert await status_of(client, "/-/tarhold/users", basic("root", PASSWORD)) == 200
    assert await status_of(client, "/-/tarhold/users", basic("alice", PASSWORD)) == 403

    ok(tarhold(storage, "user", "passwd", "alice", "--password-stdin", stdin="another password\n"))
    ok(tarhold(storage, "token", "create", "--user", "alice"))
    removed = ok(tarhold(storage, "user", "remove", "alice"))
    assert "removed user alice and revoked 1 token(s)" in removed
    client = await client_on(storage, aiohttp_client)
    assert await status_of(client, "/-/whoami", basic("alice", "another password")) == 401
    assert [u["name"] for u in json.loads(ok(tarhold(storage, "user", "list", "--json")))] == ["root"]


async def test_user_commands_fail_with_exit_1_or_2(storage: Path) -> None:
    ok(tarhold(storage, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n"))
    taken = tarhold(storage, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert taken.returncode == 1 and "user alice already exists" in taken.stderr
    missing = tarhold(storage, "user", "remove", "nobody")
    assert missing.returncode == 1 and "no such user: nobody" in missing.stderr
    short = tarhold(storage, "user", "add", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    bad_name = tarhold(storage, "user", "add", "Bob!", "--password-stdin", stdin=PASSWORD + "\n")
    assert bad_name.returncode == 2 and "invalid user name" in bad_name.stderr
    usage = subprocess.run([TARHOLD, "user", "frobnicate"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2


async def test_a_token_with_grants_works_over_http_and_is_listed_masked_then_revoked(
    storage: Path, aiohttp_client: Any
) -> None:
    ok(tarhold(storage, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n"))
    created = tarhold(
        storage, "token", "create", "--user", "alice", "--grant", "pkg:read+write=@acme/*",
        "--grant", "user:read=~alice", "--expires", "30d", "--cidr", "127.0.0.0/8", "--rate-limit", "60",
        "--name", "ci",
    )
    token = ok(created).strip()
    assert len(token.splitlines()) == 1 and len(token) >= 40
    assert "pkg:read+write=@acme/*, user:read=~alice" in created.stderr and "shown only this once" in created.stderr

    client = await client_on(storage, aiohttp_client)
    response = await client.get("/-/whoami", headers=bearer(token))
    assert response.status == 200 and await response.json() == {"username": "alice"}

    listing = ok(tarhold(storage, "token", "list", "--user", "alice"))
    assert token not in listing and token[:6] + "…" in listing and "pkg:read+write=@acme/*" in listing
    tokens = json.loads(ok(tarhold(storage, "token", "list", "--json")))
    assert len(tokens) == 1
    entry = tokens[0]
    assert entry["grants"] == ["pkg:read+write=@acme/*", "user:read=~alice"]
    assert entry["cidr_whitelist"] == ["127.0.0.0/8"] and entry["rate_limit"] == 60 and entry["name"] == "ci"
    assert entry["expires"] is not None

    assert f"revoked token {entry['key']} of alice" in ok(tarhold(storage, "token", "revoke", entry["key"]))
    client = await client_on(storage, aiohttp_client)
    assert await status_of(client, "/-/whoami", bearer(token)) == 401
    again = tarhold(storage, "token", "revoke", entry["key"], "--user", "alice")
    assert again.returncode == 1 and "no token with key" in again.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--grant", "pkg:write=*"], "invalid grant 'pkg:write=*'"),
    (["--grant", "user:read=@acme/*"], "a user grant names * or ~username"),
    (["--expires", "someday"], "expires"),
    (["--cidr", "not-a-network"], "invalid CIDR entry"),
])
def test_bad_token_options_exit_2_with_a_message(storage: Path, args: list[str], message: str) -> None:
    ok(tarhold(storage, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n"))
    result = tarhold(storage, "token", "create", "--user", "alice", *args)
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""


def test_a_token_for_an_unknown_user_exits_1(storage: Path) -> None:
    result = tarhold(storage, "token", "create", "--user", "nobody")
    assert result.returncode == 1 and "no such user: nobody" in result.stderr


def test_a_bad_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("max_body_size: lots\n")
    result = subprocess.run([TARHOLD, "user", "list", "-c", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "max_body_size" in result.stderr
