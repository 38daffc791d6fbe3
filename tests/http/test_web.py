"""The web UI over HTTP: what pages show, what they escape, who sees private packages.

The browser tests (tests/browser) drive the same pages in Chromium; these
check the markup and the session cookie's limits without a browser. The
pages read the same storage contract as the npm API, so the embedded
backend is enough here.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.http.web_pages import detail_path
from registry.http.web_readme import render_readme

from .conftest import MakeClient
from .packages import path_of, publish, publish_body
from .users import PASSWORD, add_user, bearer

RULES = {
    "@private/*": {"access": "$authenticated", "publish": "$authenticated"},
    "@alice-only/*": {"access": "alice", "publish": "alice"},
    "**": {"access": "$all", "publish": "$authenticated"},
}
EVIL = '<script>alert("x")</script>'


@pytest.fixture
def backend() -> str:
    return "embedded"


@pytest.fixture
async def web(make_client: MakeClient) -> TestClient:
    return await make_client(packages=RULES, web={"title": "Acme <packages>"})


async def put(client: TestClient, token: str, body: dict[str, Any]) -> None:
    response = await client.put(path_of(body["name"]), json=body, headers=bearer(token))
    assert response.status == 201, await response.text()


async def page(client: TestClient, path: str, cookie: str | None = None, status: int = 200) -> str:
    headers = {"Cookie": f"tarhold_session={cookie}"} if cookie else {}
    response = await client.get(path, headers=headers, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text
    return text


async def sign_in(client: TestClient, user: str, password: str = PASSWORD) -> str:
    """The session cookie's value after posting the sign-in form."""
    response = await client.post(
        "/-/web/login", data={"username": user, "password": password, "next": "/-/web/search?q=x"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/-/web/search?q=x"
    cookie = SimpleCookie(response.headers["Set-Cookie"])["tarhold_session"]
    return cookie.value


async def test_front_page_lists_public_packages_with_the_configured_title(web: TestClient) -> None:
    alice = await add_user(web, "alice")
    await publish(web, alice, "left-pad-web", "1.0.0")
    text = await page(web, "/")
    assert "<title>Acme &lt;packages&gt;</title>" in text
    assert 'href="/-/web/detail/left-pad-web"' in text
    assert "text/html" in (await web.get("/")).headers["Content-Type"]


async def test_readme_renders_as_markdown_and_loses_every_script(web: TestClient) -> None:
    alice = await add_user(web, "alice")
    body = publish_body("readme-pkg", "1.0.0")
    body["readme"] = (
        "# Hello readme\n\nSome *emphasis* and `code`.\n\n"
        f"{EVIL}\n\n<img src=\"x.png\" onerror=\"alert(1)\">\n\n"
        "[click](javascript:alert(1)) <a href=\"https://example.com/\" onclick=\"alert(1)\">site</a>\n"
        "<iframe src=\"https://example.com/\"></iframe><style>body{display:none}</style>\n"
    )
    await put(web, alice, body)
    text = await page(web, "/-/web/detail/readme-pkg")
    assert "<h1>Hello readme</h1>" in text
    assert "<em>emphasis</em>" in text and "<code>code</code>" in text
    assert "<script" not in text and 'alert("x")' not in text, text
    assert "onerror" not in text and "onclick" not in text and 'href="javascript:' not in text
    assert "<iframe" not in text and "<style" not in text
    assert 'href="https://example.com/"' in text
    assert "script-src" not in text  # no inline policy loosening; the header forbids scripts
    response = await web.get("/-/web/detail/readme-pkg")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_plain_text_readmes_are_escaped_not_rendered() -> None:
    assert render_readme(EVIL, "README.txt") == "<pre>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</pre>"
    assert render_readme(EVIL + "\n# Title", "README.md") == "\n<h1>Title</h1>\n"


async def test_package_page_shows_versions_tags_dependencies_install_and_deprecation(web: TestClient) -> None:
    alice = await add_user(web, "alice")
    await publish(web, alice, "dep-one", "2.0.0")
    await publish(web, alice, "shown", "1.0.0")
    await publish(web, alice, "shown", "1.1.0", dependencies={"dep-one": "^2.0.0", "@scope/two": "<3"})
    await publish(web, alice, "shown", "2.0.0-beta.1", tag="next")
    doc = await (await web.get("/shown?write=true", headers=bearer(alice))).json()
    doc["versions"]["1.0.0"]["deprecated"] = "use <1.1.0> instead"
    response = await web.put(f"/shown/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 201, await response.text()
    published = doc["time"]["1.1.0"][:10]

    text = await page(web, "/-/web/detail/shown")
    versions = re.findall(r'<a href="/-/web/detail/shown\?version=([^"]+)">', text)
    assert versions == ["2.0.0-beta.1", "1.1.0", "1.0.0"]
    assert f'<time datetime="{doc["time"]["1.1.0"]}"' in text and published in text
    assert "<th scope=\"row\">next</th><td>2.0.0-beta.1</td>" in text
    assert 'href="/-/web/detail/dep-one"' in text and "<code>^2.0.0</code>" in text
    assert 'href="/-/web/detail/@scope/two"' in text and "<code>&lt;3</code>" in text
    assert f"npm install shown --registry=http://127.0.0.1:{web.port}/" in text
    assert "Deprecated" not in text  # the shown version (latest) is not deprecated

    old = await page(web, "/-/web/detail/shown?version=1.0.0")
    assert '<div class="deprecated" role="alert">' in old and "use &lt;1.1.0&gt; instead" in old
    assert "npm install shown@1.0.0 --registry=" in old


async def test_descriptions_and_queries_are_escaped(web: TestClient) -> None:
    alice = await add_user(web, "alice")
    await publish(web, alice, "escape-me", "1.0.0", description=f"desc {EVIL}", keywords=["scripted"])
    results = await page(web, "/-/web/search?q=escape")
    detail = await page(web, "/-/web/detail/escape-me")
    echoed = await page(web, "/-/web/search?q=" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    for text in (results, detail, echoed):
        assert "<script>" not in text
    assert "desc &lt;script&gt;" in results and "desc &lt;script&gt;" in detail
    assert "&lt;script&gt;alert(1)" in echoed


async def test_search_finds_by_name_and_keyword(web: TestClient) -> None:
    alice = await add_user(web, "alice")
    await publish(web, alice, "colour-tools", "1.0.0", keywords=["palette"])
    await publish(web, alice, "unrelated", "1.0.0")
    by_name = await page(web, "/-/web/search?q=colour")
    by_keyword = await page(web, "/-/web/search?q=palette")
    assert "1 result for" in by_name and "colour-tools" in by_name and "unrelated</a>" not in by_name
    assert "colour-tools" in by_keyword
    assert "No package matches" in await page(web, "/-/web/search?q=nothing-like-it")


async def test_private_packages_stay_hidden_until_a_reader_signs_in(web: TestClient) -> None:
    alice = await add_user(web, "alice")
    await add_user(web, "bob")
    await publish(web, alice, "@private/secret", "1.0.0")
    await publish(web, alice, "@alice-only/diary", "1.0.0")
    await publish(web, alice, "public-one", "1.0.0")

    for path in ("/", "/-/web/search?q=secret", "/-/web/search?q=diary"):
        text = await page(web, path)
        assert "@private/secret" not in text and "@alice-only/diary" not in text
    hidden = await page(web, "/-/web/detail/@private/secret", status=404)
    assert "sign in" in hidden
    await page(web, "/-/web/detail/@private%2fsecret", status=404)

    bob = await sign_in(web, "bob")
    assert "@private/secret" in await page(web, "/-/web/search?q=secret", bob)
    assert "@alice-only/diary" not in await page(web, "/", bob)
    await page(web, "/-/web/detail/@alice-only/diary", bob, status=404)
    text = await page(web, "/-/web/detail/@private/secret", bob)
    assert "Signed in as <strong>bob</strong>" in text

    alice_cookie = await sign_in(web, "alice")
    assert "@alice-only/diary" in await page(web, "/", alice_cookie)
    await page(web, "/-/web/detail/@alice-only%2Fdiary", alice_cookie)


async def test_session_cookie_is_not_accepted_by_the_npm_api(web: TestClient) -> None:
    alice = await add_user(web, "alice")
    await publish(web, alice, "@private/api", "1.0.0")
    cookie = {"Cookie": f"tarhold_session={await sign_in(web, 'alice')}"}
    response = await web.put(path_of("@private/api"), json=publish_body("@private/api", "2.0.0"), headers=cookie)
    assert response.status == 401
    response = await web.get(path_of("@private/api"), headers=cookie)
    assert response.status == 401
    response = await web.get("/-/whoami", headers=cookie)
    assert response.status == 401
    # The same cookie does open the web page (a GET of /-/web/...).
    assert (await web.get("/-/web/detail/@private/api", headers=cookie)).status == 200


async def test_session_is_a_revocable_read_only_token_in_a_strict_cookie(web: TestClient) -> None:
    alice = await add_user(web, "alice")
    response = await web.post("/-/web/login", data={"username": "alice", "password": PASSWORD}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/"
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    token = SimpleCookie(header)["tarhold_session"].value
    tokens = await (await web.get("/-/npm/v1/tokens", headers=bearer(alice))).json()
    session = [t for t in tokens["objects"] if t["name"] == "web session"]
    assert len(session) == 1 and session[0]["readonly"] and session[0]["expires"]
    # As a bearer token it is read-only: it cannot publish.
    response = await web.put("/ro", json=publish_body("ro", "1.0.0"), headers=bearer(token))
    assert response.status == 403

    logout = await web.post("/-/web/logout", headers={"Cookie": f"tarhold_session={token}"}, allow_redirects=False)
    assert logout.status == 303
    assert 'tarhold_session=""' in logout.headers["Set-Cookie"]
    assert (await web.get("/-/whoami", headers=bearer(token))).status == 401
    assert "Sign in</a>" in await page(web, "/", token)


async def test_cookie_is_secure_behind_https(web: TestClient) -> None:
    await add_user(web, "alice")
    response = await web.post(
        "/-/web/login", data={"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"}, allow_redirects=False,
    )
    assert response.status == 303
    assert "Secure" in response.headers["Set-Cookie"]


async def test_sign_in_refuses_wrong_passwords_other_sites_and_outside_redirects(web: TestClient) -> None:
    await add_user(web, "alice")
    wrong = await web.post("/-/web/login", data={"username": "alice", "password": "nope nope nope"})
    assert wrong.status == 401 and "Set-Cookie" not in wrong.headers
    assert "Wrong username or password." in await wrong.text()
    forged = await web.post(
        "/-/web/login", data={"username": "alice", "password": PASSWORD},
        headers={"Origin": "https://example.com"}, allow_redirects=False,
    )
    assert forged.status == 403 and "Set-Cookie" not in forged.headers
    for target in ("https://example.com/", "//example.com/x", "/\\example.com", "/x\r\nSet-Cookie: a=b"):
        response = await web.post(
            "/-/web/login", data={"username": "alice", "password": PASSWORD, "next": target},
            allow_redirects=False,
        )
        assert response.headers["Location"] == "/"
    form = await page(web, "/-/web/login?next=%22%3E%3Cscript%3E")
    assert "<script>" not in form


async def test_sign_in_attempts_per_name_are_limited(web: TestClient) -> None:
    # The login throttle every channel shares (tests/http/test_password_guessing.py):
    # five failures of a name from one address, then a growing wait.
    await add_user(web, "alice")
    statuses = []
    for _ in range(6):
        response = await web.post("/-/web/login", data={"username": "alice", "password": "guess guess"})
        statuses.append(response.status)
    assert statuses == [401] * 5 + [429]
    assert int(response.headers["Retry-After"]) >= 1
    other = await web.post("/-/web/login", data={"username": "bob", "password": "guess guess"})
    assert other.status == 401


async def test_disabled_web_ui_answers_404_json(make_client: MakeClient) -> None:
    client = await make_client(web={"enable": False})
    for path in ("/", "/-/web/search?q=x", "/-/web/detail/anything", "/-/web/login"):
        response = await client.get(path)
        assert response.status == 404, path
        assert response.headers["Content-Type"].startswith("application/json"), path
    assert (await client.post("/-/web/login", data={"username": "a", "password": "b"})).status in (404, 405)


async def test_unknown_and_invalid_names_are_html_404s(web: TestClient) -> None:
    assert "There is no package <code>nope</code>" in await page(web, "/-/web/detail/nope", status=404)
    text = await page(web, "/-/web/detail/.hidden", status=404)
    assert "<code>.hidden</code>" in text


async def test_failing_uplink_is_an_html_error_page(make_client: MakeClient) -> None:
    client = await make_client(
        uplinks={"down": {"url": "http://127.0.0.1:9/", "timeout": "2s", "max_fails": 1}},
        packages={"**": {"access": "$all", "publish": "$authenticated", "proxy": "down"}},
    )
    response = await client.get("/-/web/detail/only-upstream")
    assert response.status in (502, 503)
    assert response.content_type == "text/html"
    assert "<h1>Not available</h1>" in await response.text()


def test_detail_paths_encode_each_part() -> None:
    assert detail_path("", "@scope/name") == "/-/web/detail/@scope/name"
    assert detail_path("/reg", "a b", "1.0.0") == "/reg/-/web/detail/a%20b?version=1.0.0"
