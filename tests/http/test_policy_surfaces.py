"""The mirror policy beyond the packument, on every backend: the web UI, search and `tarhold warm`
show and fetch exactly what `GET /{name}` lets through."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.config import parse_config
from registry.ops.warm import Wanted, warm
from tests.support.fake_upstream import FakeUpstream

from .conftest import MakeClient
from .packages import publish
from .test_policy_http import (
    ADMIN,
    ADMIN_PASSWORD,
    NOW,
    add_policy_packages,
    client_with_admin,
    policy_config,
)
from .test_web import page
from .users import PASSWORD, add_user

CLEARS = (NOW - timedelta(hours=1) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%MZ")
QUARANTINED = f"lodash@4.17.21 is quarantined until {CLEARS} by policy min_age=3d"
EVIL = "<script>alert(1)</script>"
POLICY = {"**": {"min_age": "3d", "block": [{"package": "chalk", "reason": "typosquat"}]}}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        add_policy_packages(fake)
        fake.add_package("chalk-fork", ["1.0.0"])
        yield fake


@pytest.fixture
async def client(
    make_client: MakeClient, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> TestClient:
    return await client_with_admin(make_client, monkeypatch, upstream, POLICY)


async def sign_in(client: TestClient, user: str, password: str) -> str:
    response = await client.post("/-/web/login", data={"username": user, "password": password}, allow_redirects=False)
    assert response.status == 303, await response.text()
    client.session.cookie_jar.clear()  # sent only where a test says so
    return SimpleCookie(response.headers["Set-Cookie"])["tarhold_session"].value


def listed_versions(text: str, name: str) -> list[str]:
    return re.findall(rf'<a href="/-/web/detail/{re.escape(name)}\?version=([^"]+)">', text)


async def block(client: TestClient, **rule: Any) -> dict[str, Any]:
    response = await client.post("/-/tarhold/policy", headers=ADMIN, json={"kind": "block", **rule})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def search(client: TestClient, text: str) -> dict[str, dict[str, Any]]:
    response = await client.get("/-/v1/search", params={"text": text})
    assert response.status == 200, await response.text()
    return {o["package"]["name"]: o["package"] for o in (await response.json())["objects"]}


# -- the package page ------------------------------------------------------------------


async def test_visitors_see_the_package_page_the_packument_shows(client: TestClient) -> None:
    await add_user(client, "alice")
    for cookie in (None, await sign_in(client, "alice", PASSWORD)):
        text = await page(client, "/-/web/detail/lodash", cookie)
        assert listed_versions(text, "lodash") == ["5.0.0-beta.1", "4.17.20"]
        assert '<th scope="row">latest</th><td>4.17.20</td>' in text
        assert "quarantined" not in text
        hidden = await page(client, "/-/web/detail/lodash?version=4.17.21", cookie, status=404)
        assert QUARANTINED in hidden
        missing = await page(client, "/-/web/detail/lodash?version=9.9.9", cookie, status=404)
        assert "lodash has no version or dist-tag 9.9.9." in missing


async def test_an_admin_sees_hidden_versions_marked_with_the_refusal(client: TestClient) -> None:
    rule = await block(client, package="lodash", versions="4.17.20", reason=f"bad {EVIL}")
    admin = await sign_in(client, "admin", ADMIN_PASSWORD)
    text = await page(client, "/-/web/detail/lodash", admin)
    assert listed_versions(text, "lodash") == ["5.0.0-beta.1", "4.17.21", "4.17.20"]
    assert '<span class="badge warn" title="' in text and ">quarantined</span>" in text
    assert QUARANTINED in text
    blocked = f"lodash@4.17.20 is blocked by rule {rule['id']} (bad &lt;script&gt;alert(1)&lt;/script&gt;)"
    assert ">blocked</span>" in text and blocked in text
    assert EVIL not in text
    # Dist-tags are what clients get: both releases hidden, so no latest at all.
    assert '<th scope="row">latest</th>' not in text

    shown = await page(client, "/-/web/detail/lodash?version=4.17.21", admin)
    assert '<div class="deprecated policy" role="alert"><strong>quarantined</strong>: ' + QUARANTINED in shown
    anonymous = await page(client, "/-/web/detail/lodash?version=4.17.20", status=404)
    assert blocked in anonymous


# -- search ----------------------------------------------------------------------------


async def test_search_names_the_version_the_policy_lets_through(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    assert await publish(client, alice, "@private/app", "1.0.0", description="the steady one") == 201
    assert await publish(client, alice, "@private/app", "1.0.1", description="the stolen one") == 201
    assert (await search(client, "app"))["@private/app"]["version"] == "1.0.1"  # local: exempt from ages
    await block(client, package="@private/app", versions="1.0.1", reason="stolen CI token")
    found = (await search(client, "app"))["@private/app"]
    assert found["version"] == "1.0.0" and found["description"] == "the steady one"
    assert "@private/app" not in await search(client, "stolen")
    web = await page(client, "/-/web/search?q=app")
    assert '<span class="version">1.0.0</span>' in web and "the steady one" in web
    assert "1.0.0" in await page(client, "/")

    await block(client, package="@private/app", reason="pulled")
    assert "@private/app" not in await search(client, "app")
    assert "@private/app" not in await page(client, "/-/web/search?q=app")
    assert "@private/app" not in await page(client, "/")


async def test_upstream_results_are_judged_on_a_stored_copy_or_a_whole_package_block(client: TestClient) -> None:
    # No copy here: upstream's result as it is (its quarantined latest included).
    assert (await search(client, "lodash"))["lodash"]["version"] == "4.17.21"
    assert (await client.get("/lodash")).status == 200  # mirrored into storage now
    assert (await search(client, "lodash"))["lodash"]["version"] == "4.17.20"
    # A block of every version drops it; a rule on another name does not.
    found = await search(client, "chalk")
    assert "chalk" not in found and found["chalk-fork"]["version"] == "1.0.0"
    await block(client, package="lodash", reason="pulled")
    assert "lodash" not in await search(client, "lodash")


# -- tarhold warm ------------------------------------------------------------------------


async def test_warm_skips_what_the_policy_hides_and_says_why(
    client: TestClient, upstream: FakeUpstream, storage_config: dict[str, Any], tmp_path: Path
) -> None:
    rule = await block(client, package="chalk-fork", versions="1.0.0", reason="run-time rule")
    config = parse_config({**storage_config, **policy_config(upstream, POLICY)})
    wanted = [Wanted("lodash", "4.17.20"), Wanted("lodash", "4.17.21"), Wanted("chalk", "5.0.0"),
              Wanted("chalk-fork", "1.0.0")]
    summary = await warm(config, wanted, progress=False)
    assert summary == {"fetched": 1, "skipped": 3}
    assert summary.skipped == {
        Wanted("lodash", "4.17.21"): QUARANTINED,
        Wanted("chalk", "5.0.0"): "chalk@5.0.0 is blocked by rule policy.**.block[0] (typosquat)",
        Wanted("chalk-fork", "1.0.0"): f"chalk-fork@1.0.0 is blocked by rule {rule['id']} (run-time rule)",
    }
    for version, count in (("4.17.20", 1), ("4.17.21", 0)):
        assert upstream.tarball_count("lodash", version) == count
    assert upstream.tarball_count("chalk", "5.0.0") == 0
    again = await warm(config, wanted, progress=False)
    assert again == {"cached": 1, "skipped": 3}
