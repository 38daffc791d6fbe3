"""The real npm CLI against a real tarhold server: adduser, login, whoami, token, logout.

npm runs with a temporary HOME, user config, global config and cache, so the
machine's own npm configuration is never read or touched. Prompts that npm
only answers on a terminal (username, password, email) are driven through a
pseudo-terminal from the stdlib `pty` module.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from registry.config import parse_config
from registry.http.app import SERVER_KWARGS, create_app
from registry.http.routes_auth import install
from tests.e2e.terminal import run_on_tty

pytestmark = [
    pytest.mark.npm,
    pytest.mark.skipif(shutil.which("npm") is None, reason="the npm CLI is not installed"),
]

NPM_TIMEOUT = 90.0
PASSWORD = "e2e password 123"


@dataclass
class Npm:
    """npm bound to one registry and one throwaway configuration."""

    registry: str
    env: dict[str, str]
    userconfig: Path

    async def run(self, *args: str, check: bool = True) -> tuple[int, str]:
        """Run npm without a terminal; (exit code, stdout + stderr)."""
        proc = await asyncio.create_subprocess_exec(
            "npm", *args, "--registry", self.registry, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), NPM_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        text = out.decode(errors="replace")
        if check:
            assert proc.returncode == 0, f"npm {' '.join(args)} failed:\n{text}"
        return proc.returncode or 0, text

    async def run_tty(self, *args: str, answers: list[tuple[str, str]]) -> tuple[int, str]:
        """Run npm on a pseudo-terminal, typing each answer once its prompt shows."""
        return await run_on_tty(
            ["npm", *args, "--registry", self.registry], answers, env=self.env, timeout=NPM_TIMEOUT
        )

    def npmrc(self) -> str:
        return self.userconfig.read_text() if self.userconfig.exists() else ""


@pytest.fixture
async def registry_url(tmp_path: Path) -> AsyncIterator[str]:
    """A tarhold server on 127.0.0.1 and a free port, in the test's event loop."""
    config = parse_config({"storage": str(tmp_path / "storage"), "listen": "127.0.0.1:0"})
    app = create_app(config)
    install(app)  # no-op once create_app installs auth itself
    runner = web.AppRunner(app, **SERVER_KWARGS)  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.fixture
def npm(registry_url: str, tmp_path: Path) -> Npm:
    home = tmp_path / "home"
    home.mkdir()
    global_rc = tmp_path / "global-npmrc"
    global_rc.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_")}
    env.update({
        "HOME": str(home),
        "npm_config_userconfig": str(home / ".npmrc"),
        "npm_config_globalconfig": str(global_rc),
        "npm_config_cache": str(tmp_path / "npm-cache"),
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        "npm_config_browser": "false",
        "NO_COLOR": "1",
    })
    return Npm(registry_url, env, home / ".npmrc")


ADDUSER_PROMPTS = [("Username:", "e2euser"), ("Password:", PASSWORD), ("Email", "e2e@example.com")]


async def test_npm_adduser_whoami_token_and_logout(npm: Npm, registry_url: str) -> None:
    code, out = await npm.run_tty("adduser", "--auth-type=legacy", answers=ADDUSER_PROMPTS)
    assert code == 0, out
    assert "Logged in on" in out
    host = registry_url.removeprefix("http:").rstrip("/")
    login_token = re.search(rf"{re.escape(host)}/:_authToken=(\S+)", npm.npmrc())
    assert login_token, npm.npmrc()

    _, out = await npm.run("whoami")
    assert out.strip().splitlines()[-1] == "e2euser"

    _, out = await npm.run("token", "create", f"--password={PASSWORD}")
    created = re.search(r"Created token (\S+)", out)
    assert created, out
    token = created.group(1)

    _, out = await npm.run("token", "list")
    assert f"Token {token[:6]}… with id" in out

    _, out = await npm.run("token", "list", "--json")
    listed = [t for t in _json(out) if t["token"] == token[:6]]
    assert len(listed) == 1

    _, out = await npm.run("token", "revoke", listed[0]["id"])
    assert "Removed 1 token" in out
    assert await _whoami_status(registry_url, token) == 401

    await npm.run("logout")
    assert "_authToken" not in npm.npmrc()
    assert await _whoami_status(registry_url, login_token.group(1)) == 401
    code, out = await npm.run("whoami", check=False)
    assert code != 0 and "ENEEDAUTH" in out


async def test_npm_legacy_login_with_a_wrong_password_prints_the_reason(npm: Npm) -> None:
    code, _ = await npm.run_tty("adduser", "--auth-type=legacy", answers=ADDUSER_PROMPTS)
    assert code == 0
    await npm.run("logout")
    code, out = await npm.run_tty(
        "login", "--auth-type=legacy", answers=[("Username:", "e2euser"), ("Password:", "wrong one")]
    )
    assert code != 0
    assert "bad username or password" in out
    code, out = await npm.run_tty(
        "login", "--auth-type=legacy", answers=[("Username:", "e2euser"), ("Password:", PASSWORD)]
    )
    assert code == 0, out
    _, out = await npm.run("whoami")
    assert out.strip().splitlines()[-1] == "e2euser"


async def test_npm_web_login_while_npm_polls(npm: Npm, registry_url: str) -> None:
    code, _ = await npm.run_tty("adduser", "--auth-type=legacy", answers=ADDUSER_PROMPTS)
    assert code == 0
    await npm.run("logout")

    proc = await asyncio.create_subprocess_exec(
        "npm", "login", "--registry", registry_url, env=npm.env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = ""
    try:
        async with asyncio.timeout(NPM_TIMEOUT):
            login_url = None
            while login_url is None:
                line = (await proc.stdout.readline()).decode()
                assert line, f"npm exited before printing a login URL:\n{output}"
                output += line
                match = re.search(r"(http://\S+/-/v1/login/\S+)", line)
                login_url = match.group(1) if match else None
            async with aiohttp.ClientSession() as session:
                form = {"username": "e2euser", "password": PASSWORD}
                async with session.post(login_url, data=form) as response:
                    assert response.status == 200, await response.text()
            output += (await proc.stdout.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, output
    assert "Logged in on" in output
    _, out = await npm.run("whoami")
    assert out.strip().splitlines()[-1] == "e2euser"


def _json(text: str) -> Any:
    import json

    return json.loads(text[text.index("[") :])


async def _whoami_status(registry_url: str, token: str) -> int:
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(registry_url + "-/whoami", headers=headers) as response:
            return response.status
