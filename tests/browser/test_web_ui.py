"""The web UI in headless Chromium: search, the package page, and signing in for private packages."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .conftest import PRIVATE, PUBLIC, SITE_TITLE, Site

SCREENSHOT_ENV = "TARHOLD_WEB_SCREENSHOT"  # a path: where to keep a picture of the package page


def search(page: Any, site: Site, text: str) -> None:
    """Type into the header's search box and submit it, as a visitor would."""
    page.goto(site.url + "/")
    page.get_by_role("searchbox", name="Search packages").fill(text)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/-/web/search\?q="))


def test_search_finds_the_public_package_and_its_page_shows_readme_and_versions(
    page: Any, site: Site, tmp_path: Path
) -> None:
    page.goto(site.url + "/")
    assert page.title() == SITE_TITLE
    search(page, site, "web-public")
    page.get_by_role("link", name=PUBLIC, exact=True).click()
    page.wait_for_url(re.compile(re.escape(f"/-/web/detail/{PUBLIC}")))

    assert page.locator("h1.package-name").inner_text() == PUBLIC
    heading = page.locator(".markdown h1")
    assert heading.inner_text() == "Public package heading"
    assert page.locator(".markdown strong").inner_text() == "browser"
    assert page.locator(".markdown li").all_inner_texts() == ["one", "two"]
    versions = page.locator("section.versions tbody tr td:first-child a").all_inner_texts()
    assert versions == ["1.1.0", "1.0.0"]
    dates = page.locator("section.versions tbody time").all_inner_texts()
    assert len(dates) == 2 and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates)
    assert "latest" in page.locator("section.dist-tags").inner_text()
    assert page.get_by_role("link", name="left-pad-web").count() == 1
    assert f"npm install {PUBLIC} --registry={site.url}/" in page.locator("section.install").inner_text()

    # The readme's script and event handler neither rendered nor ran.
    assert page.locator("main script").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    assert page.title() == f"{PUBLIC} · {SITE_TITLE}"

    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "package-page.png")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_private_package_is_hidden_until_sign_in(page: Any, site: Site) -> None:
    detail = f"{site.url}/-/web/detail/{PRIVATE}"
    search(page, site, "web-secret")
    assert "No package matches" in page.locator("main").inner_text()
    assert page.get_by_role("link", name=PRIVATE).count() == 0
    response = page.goto(detail)
    assert response is not None and response.status == 404
    assert page.locator("main h1").inner_text() == "Not found"

    # Sign in from the search page's header; the form brings us back to it.
    search(page, site, "web-secret")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill(site.user)
    page.get_by_label("Password").fill(site.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/-/web/search\?q=web-secret"))
    assert f"Signed in as {site.user}" in page.locator("header.top").inner_text()
    page.get_by_role("link", name=PRIVATE, exact=True).click()
    page.wait_for_url(re.compile(re.escape("/-/web/detail/@private/web-secret")))
    assert page.locator(".markdown h1").inner_text() == "Private package heading"
    cookie = next(c for c in page.context.cookies() if c["name"] == "tarhold_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    # The cookie is for the pages only: the npm API does not take it.
    api = page.request.get(site.url + "/" + quote(PRIVATE, safe="@"))
    assert api.status == 401

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(site.url + "/")
    response = page.goto(detail)
    assert response is not None and response.status == 404


def test_wrong_password_keeps_the_package_hidden(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/-/web/login")
    page.get_by_label("Username").fill(site.user)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    assert not [c for c in page.context.cookies() if c["name"] == "tarhold_session"]
    search(page, site, "web-secret")
    assert page.get_by_role("link", name=PRIVATE).count() == 0
