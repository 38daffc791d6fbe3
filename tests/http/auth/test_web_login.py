"""The web login (`npm login --auth-type=web`): the URLs npm opens and polls."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.http.auth.helpers import form_action
from tests.http.conftest import MakeClient
from tests.http.users import (
    PASSWORD,
    add_user,
    bearer,
    whoami_status,
)

# -- web login ----------------------------------------------------------------


async def test_web_login_end_to_end(client: TestClient) -> None:
    await add_user(client, "alice")
    start = await client.post("/-/v1/login", json={})
    assert start.status == 200
    urls = await start.json()
    host = f"http://{client.host}:{client.port}"
    assert urls["loginUrl"].startswith(host + "/-/v1/login/")
    assert urls["doneUrl"].startswith(host + "/-/v1/done/")
    done_path = "/" + urls["doneUrl"].split("/", 3)[3]

    pending = await client.get(done_path)
    assert pending.status == 202 and pending.headers["Retry-After"] == "1"
    assert (await pending.json()) == {}

    page = await client.get(form_action(urls["loginUrl"]))
    assert page.status == 200 and "<form" in await page.text()
    wrong = await client.post(
        form_action(urls["loginUrl"]), data={"username": "alice", "password": "wrong password"}
    )
    assert wrong.status == 401 and "bad username or password" in await wrong.text()
    signed_in = await client.post(
        form_action(urls["loginUrl"]), data={"username": "alice", "password": PASSWORD}
    )
    assert signed_in.status == 200 and "close this page" in await signed_in.text()

    done = await client.get(done_path)
    assert done.status == 200
    token = (await done.json())["token"]
    assert (await (await client.get("/-/whoami", headers=bearer(token))).json()) == {"username": "alice"}
    assert (await client.get(done_path)).status == 404


async def test_web_adduser_creates_an_account(client: TestClient) -> None:
    urls = await (await client.post("/-/v1/login", json={"create": True})).json()
    page = await client.get(form_action(urls["loginUrl"]))
    assert 'name="email"' in await page.text()
    form = {"username": "newbie", "password": PASSWORD, "email": "n@example.com"}
    assert (await client.post(form_action(urls["loginUrl"]), data=form)).status == 200
    token = (await (await client.get("/" + urls["doneUrl"].split("/", 3)[3])).json())["token"]
    assert await whoami_status(client, token) == 200


async def test_web_login_done_url_needs_its_secret(client: TestClient) -> None:
    urls = await (await client.post("/-/v1/login")).json()
    done_path = "/" + urls["doneUrl"].split("/", 3)[3]
    assert (await client.get(done_path.split("?")[0])).status == 404
    assert (await client.get(done_path.split("?")[0] + "?secret=guess")).status == 404
    assert (await client.get("/-/v1/done/unknown-session?secret=x")).status == 404
    assert (await client.get("/-/v1/login/unknown-session")).status == 404


async def test_web_login_urls_follow_forwarded_headers(client: TestClient) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "npm.example.com"}
    urls = await (await client.post("/-/v1/login", headers=headers)).json()
    assert urls["loginUrl"].startswith("https://npm.example.com/-/v1/login/")


async def test_web_login_urls_follow_public_url(make_client: MakeClient) -> None:
    client = await make_client(public_url="https://registry.example.com/npm")
    urls = await (await client.post("/-/v1/login")).json()
    assert urls["doneUrl"].startswith("https://registry.example.com/npm/-/v1/done/")


async def test_web_login_with_a_stale_token_is_not_blocked(client: TestClient) -> None:
    response = await client.post("/-/v1/login", json={}, headers=bearer("stale-token"))
    assert response.status == 200  # a 4xx would make npm fall back to the legacy prompts
