"""Organizations for admins and in the web UI, on every backend.

The org `acme` (owner `owner`) has the members `dev` (in the team `web`,
which may read @acme/secret) and `viewer` (in no team but `developers`,
which has no grant on @acme/secret); `outsider` is a user of the registry
but not of the org, `admin` a registry admin. @acme/secret is private,
@acme/open public.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.domain.org_store import (
    add_team_member,
    create_org,
    create_team,
    grant,
    revoke,
    set_member,
)
from registry.http.appkeys import DATABASE
from registry.http.org_directory import reload

from .conftest import MakeClient
from .packages import path_of, publish_body
from .users import PASSWORD, add_user, basic, bearer

ADMIN_PASSWORD = "operator chose this"
ADMIN = basic("admin", ADMIN_PASSWORD)
EVIL = '<script>alert("team")</script>'


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch, make_client: MakeClient) -> TestClient:
    """An app with the admin `admin` (from TARHOLD_ADMIN_PASSWORD) and the org `acme`."""
    monkeypatch.setenv("TARHOLD_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.delenv("TARHOLD_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("TARHOLD_ADMIN_USER", raising=False)
    client = await make_client()
    await make_org(client)
    return client


TOKENS: dict[str, str] = {}


async def make_org(client: TestClient) -> None:
    for user in ("owner", "dev", "viewer", "outsider"):
        TOKENS[user] = await add_user(client, user)
    db = client.server.app[DATABASE]
    org = await create_org(db, "acme", "owner")
    org = await set_member(db, org, "dev", "developer")
    org = await set_member(db, org, "viewer", "developer")
    await reload(client.server.app)
    for name, access in (("@acme/secret", None), ("@acme/open", "public")):
        body = {**publish_body(name, "1.0.0", keywords=["acmething"]), "access": access}
        response = await client.put(path_of(name), json=body, headers=bearer(TOKENS["owner"]))
        assert response.status == 201, await response.text()
    org = (await reload(client.server.app)).orgs["acme"]
    await revoke(db, org, "developers", "@acme/secret")  # only the team `web` reads it
    await create_team(db, org, "web", f"the web team {EVIL}")
    org = (await reload(client.server.app)).orgs["acme"]
    await add_team_member(db, org, "web", "dev")
    await grant(db, org, "web", "@acme/secret", "read")
    await reload(client.server.app)


async def call(client: TestClient, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    response = await client.get(path, headers=headers or {})
    body = await response.json() if response.content_type == "application/json" else await response.text()
    return response.status, body


async def sign_in(client: TestClient, user: str, password: str = PASSWORD) -> dict[str, str]:
    """The Cookie header of a web session of `user`."""
    response = await client.post("/-/web/login", data={"username": user, "password": password}, allow_redirects=False)
    assert response.status == 303, await response.text()
    client.session.cookie_jar.clear()  # each request says who it is: no session rides along by itself
    return {"Cookie": f"tarhold_session={SimpleCookie(response.headers['Set-Cookie'])['tarhold_session'].value}"}


async def page(client: TestClient, path: str, headers: dict[str, str] | None = None, status: int = 200) -> str:
    response = await client.get(path, headers=headers or {}, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text
    return text


# -- the admin API ------------------------------------------------------------------


async def test_an_admin_sees_every_org_with_members_teams_grants_and_visibility(client: TestClient) -> None:
    status, body = await call(client, "/-/tarhold/orgs", ADMIN)
    assert status == 200, body
    assert body["total"] == 1
    acme = body["orgs"][0]
    assert acme["name"] == "acme" and acme["created_by"] == "owner" and acme["created"]
    assert acme["members"] == {"dev": "developer", "owner": "owner", "viewer": "developer"}
    teams = {team["name"]: team for team in acme["teams"]}
    assert teams["web"] == {
        "name": "web", "description": f"the web team {EVIL}", "members": ["dev"], "grants": {"@acme/secret": "read"},
    }
    assert teams["developers"]["members"] == ["dev", "owner", "viewer"]
    assert teams["developers"]["grants"] == {"@acme/open": "write"}
    assert acme["packages"] == [
        {"name": "@acme/open", "public": True, "teams": {"developers": "write"}},
        {"name": "@acme/secret", "public": False, "teams": {"web": "read"}},
    ]
    status, one = await call(client, "/-/tarhold/orgs/acme", ADMIN)
    assert status == 200 and one == acme


async def test_the_admin_api_reads_the_database_not_the_snapshot(client: TestClient) -> None:
    db = client.server.app[DATABASE]
    stored = await create_org(db, "globex", "outsider")  # as another instance would: no reload here
    await set_member(db, stored, "viewer", "admin")
    status, body = await call(client, "/-/tarhold/orgs/globex", ADMIN)
    assert status == 200 and body["members"] == {"outsider": "owner", "viewer": "admin"}
    status, body = await call(client, "/-/tarhold/orgs", ADMIN)
    assert [o["name"] for o in body["orgs"]] == ["acme", "globex"]


async def test_an_unknown_org_is_404_and_a_malformed_name_400_for_an_admin(client: TestClient) -> None:
    status, body = await call(client, "/-/tarhold/orgs/nothing-here", ADMIN)
    assert status == 404 and "nothing-here" in body["error"]
    status, body = await call(client, "/-/tarhold/orgs/Bad%20Name", ADMIN)
    assert status == 400 and "error" in body


@pytest.mark.parametrize("path", ["/-/tarhold/orgs", "/-/tarhold/orgs/acme", "/-/tarhold/orgs/nothing-here"])
async def test_the_org_admin_api_is_401_anonymous_and_403_for_others_even_owners(client: TestClient, path: str) -> None:
    status, body = await call(client, path)
    assert status == 401 and "error" in body
    for user in ("owner", "outsider"):
        status, body = await call(client, path, bearer(TOKENS[user]))
        assert status == 403 and body == {"error": "the admin API is for admins only"}


# -- the web UI ---------------------------------------------------------------------


async def test_a_member_sees_the_org_page_with_members_teams_and_packages(client: TestClient) -> None:
    text = await page(client, "/-/web/org/acme", await sign_in(client, "dev"))
    assert "<h1>@acme</h1>" in text and "You are a developer" in text
    for member, role in (("owner", "owner"), ("dev", "developer"), ("viewer", "developer")):
        assert re.search(rf"<td>{member}</td><td><span class=\"badge\">{role}</span>", text), member
    assert "@acme:web" in text and "@acme:developers" in text
    assert EVIL not in text and "&lt;script&gt;alert(&quot;team&quot;)&lt;/script&gt;" in text
    assert 'href="/-/web/detail/@acme/secret"' in text and 'href="/-/web/detail/@acme/open"' in text
    assert re.search(r"@acme/secret</a></td><td><span class=\"badge warn\">private</span></td><td>read-only", text)
    assert re.search(r"@acme/open</a></td><td><span class=\"badge\">public</span></td><td>read-write", text)


async def test_a_member_without_a_grant_never_sees_a_private_package_name(client: TestClient) -> None:
    text = await page(client, "/-/web/org/acme", await sign_in(client, "viewer"))
    assert "@acme/open" in text and "@acme:web" in text
    assert "@acme/secret" not in text  # neither in the package list nor under the team that holds it


async def test_outsiders_and_anonymous_visitors_get_the_unknown_org_page(client: TestClient) -> None:
    outsider = await sign_in(client, "outsider")
    hidden = await page(client, "/-/web/org/acme", outsider, status=404)
    unknown = await page(client, "/-/web/org/acmf", outsider, status=404)
    assert hidden.replace("acme", "acmf") == unknown
    assert "@acme/secret" not in hidden and "owner" not in hidden
    anonymous = await page(client, "/-/web/org/acme", status=404)
    assert "sign in" in anonymous and anonymous.replace("acme", "acmf") == await page(client, "/-/web/org/acmf", status=404)
    evil = await page(client, "/-/web/org/%3Cscript%3E", outsider, status=404)
    assert "<script>" not in evil and "&lt;script&gt;" in evil


async def test_a_registry_admin_sees_every_org_page_and_lists_every_org(client: TestClient) -> None:
    admin = await sign_in(client, "admin", ADMIN_PASSWORD)
    text = await page(client, "/-/web/org/acme", admin)
    assert "registry admin" in text and "<td>viewer</td>" in text
    assert 'href="/-/web/org/acme"' in await page(client, "/", admin)


async def test_private_org_packages_stay_off_the_front_page_and_search_for_who_may_not_read_them(
    client: TestClient,
) -> None:
    visitors = {"anonymous": {}, "outsider": await sign_in(client, "outsider"), "viewer": await sign_in(client, "viewer")}
    for who, headers in visitors.items():
        for path in ("/", "/-/web/search?q=acmething", "/-/web/search?q=secret"):
            text = await page(client, path, headers)
            assert "@acme/secret" not in text, f"{who} {path}"
        assert "@acme/open" in await page(client, "/-/web/search?q=acmething", headers), who
        await page(client, "/-/web/detail/@acme/secret", headers, status=404)
    dev = await sign_in(client, "dev")
    for path in ("/", "/-/web/search?q=acmething", "/-/web/search?q=secret"):
        assert "@acme/secret" in await page(client, path, dev), path


async def test_the_front_page_lists_the_visitors_orgs(client: TestClient) -> None:
    dev = await page(client, "/", await sign_in(client, "dev"))
    assert "Your organizations" in dev and 'href="/-/web/org/acme">@acme</a> <span class="badge">developer</span>' in dev
    for headers in ({}, await sign_in(client, "outsider")):
        text = await page(client, "/", headers)
        assert "Your organizations" not in text and "/-/web/org/" not in text


async def test_a_package_page_names_its_org_and_links_members_to_it(client: TestClient) -> None:
    dev = await page(client, "/-/web/detail/@acme/secret", await sign_in(client, "dev"))
    assert '<dt>Organization</dt><dd><a href="/-/web/org/acme">@acme</a>' in dev and ">private</span>" in dev
    outsider = await page(client, "/-/web/detail/@acme/open", await sign_in(client, "outsider"))
    assert "<dt>Organization</dt><dd>@acme</dd>" in outsider and "/-/web/org/" not in outsider


async def test_the_org_page_lists_packages_of_its_scope_published_before_the_org(client: TestClient) -> None:
    response = await client.put(path_of("@globex/legacy"), json=publish_body("@globex/legacy", "1.0.0"),
                                 headers=bearer(TOKENS["outsider"]))
    assert response.status == 201, await response.text()
    await create_org(client.server.app[DATABASE], "globex", "outsider")
    await reload(client.server.app)
    text = await page(client, "/-/web/org/globex", await sign_in(client, "outsider"))
    assert re.search(r"@globex/legacy</a></td><td><span class=\"badge\">public</span>", text)
