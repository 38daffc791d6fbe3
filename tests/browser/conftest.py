"""Browser fixtures: a real `tarhold serve`, two published packages, and headless Chromium.

- `chromium_path`: Debian's /usr/bin/chromium. Missing, the tests skip with
  a message — unless TARHOLD_BROWSER_TESTS=1 (set by `make test-browser`,
  which installs Chromium first), where a missing browser is a broken setup
  and fails them.
- `site`: one `tarhold serve` for the module on a fresh directory, with a
  private scope (`@private/*`: `$authenticated`), a user, a public package
  whose readme has markdown and a script, and a private package.
- `browser`: Chromium driven by Playwright's sync API, headless, without
  sandbox, GPU or background network traffic.

The server listens on 127.0.0.1 only and is stopped by its own PID.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.fixtures import PASSWORD, add_user, http_json, path_of
from tests.http.packages import publish_body
from tests.support.servers import HOST, ServerProcess, free_port

CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = os.environ.get("TARHOLD_BROWSER_TESTS") == "1"
TARHOLD = Path(sys.executable).parent / "tarhold"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SERVER_START_TIMEOUT = 30.0
SITE_TITLE = "Acme packages"
USER = "webuser"
PUBLIC = "web-public-pkg"
PRIVATE = "@private/web-secret"
PUBLIC_README = """# Public package heading

A package for the **browser** tests, with `code` and a list:

- one
- two

<script>window.__pwned = "script"; document.title = "pwned";</script>

<img src="missing.png" onerror="window.__pwned = 'onerror'">
"""
PRIVATE_README = "# Private package heading\n\nOnly for signed-in readers.\n"


@dataclass(frozen=True)
class Site:
    """The running registry: its URL (no trailing slash) and the user that signs in."""

    url: str
    user: str
    password: str


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.is_file():
        message = f"no {CHROMIUM}: install Debian's chromium (apt-get install chromium) or run `make test-browser`"
        if REQUIRED:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return str(CHROMIUM)


def publish(url: str, token: str, name: str, version: str, readme: str, **manifest: Any) -> None:
    body = publish_body(name, version, base=url, **manifest)
    body["readme"] = readme
    status, answer = http_json("PUT", url + path_of(name), body, token=token)
    assert status == 201, f"publish {name}@{version}: {status} {answer}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not TARHOLD.is_file():
        pytest.fail(f"no {TARHOLD}: install the project into the venv (`make install-test`)", pytrace=False)
    workdir = tmp_path_factory.mktemp("tarhold-web")
    port = free_port()
    config = {
        "listen": f"{HOST}:{port}",
        "storage": str(workdir / "storage"),
        "log": {"level": "info"},
        "web": {"enable": True, "title": SITE_TITLE},
        "packages": {
            "@private/*": {"access": "$authenticated", "publish": "$authenticated"},
            "**": {"access": "$all", "publish": "$authenticated"},
        },
    }
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))  # rule order matters
    argv = [str(TARHOLD), "serve", "-c", str(config_path)]
    process = ServerProcess.spawn("tarhold-web", argv, cwd=workdir, log_dir=workdir)
    url = f"http://{HOST}:{port}"

    def probe() -> None:
        status, _ = http_json("GET", f"{url}/-/ping")
        assert status == 200

    process.wait_until_ready(probe, timeout=SERVER_START_TIMEOUT, what="GET /-/ping")
    try:
        token = add_user(url + "/", USER, PASSWORD)
        publish(url, token, PUBLIC, "1.0.0", PUBLIC_README, description="A public package")
        publish(url, token, PUBLIC, "1.1.0", PUBLIC_README, description="A public package",
                dependencies={"left-pad-web": "^1.0.0"})
        publish(url, token, PRIVATE, "0.1.0", PRIVATE_README, description="A private package")
        yield Site(url, USER, PASSWORD)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; JavaScript dialogs fail the test."""
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        yield page
    finally:
        context.close()
    assert not dialogs, f"a script ran and opened a dialog: {dialogs}"
