"""The web UI: `/`, `/-/web/search`, `/-/web/detail/{name}`, `/-/web/org/{org}`, `/-/web/login`,
`/-/web/logout`.

Server-rendered HTML (web_pages.py) and one stylesheet (static/web.css,
served at /-/static/web.css); no script, nothing from another origin. With
`web: {enable: false}` none of these routes exist and `/` answers 404 as
the npm API does.

Who sees what: a package shows — in the list, in search, on its page —
only when the `packages:` rule's `access`, the org of its scope (a private
org package) and the token's grants let the visitor read it, exactly as
`GET /{name}` decides. A private package is
"not found" to everyone else, never "forbidden": its name stays hidden.
The mirror policy holds here as in the packument: a page lists the versions
and dist-tags `GET /{name}` shows, search and the front page name the latest
version it shows (and leave out a package it hides entirely), and a
`?version=` it hides is a 404 saying why. An admin (the admin API's test:
`admin: true`, and a credential that may read users) also sees the hidden
versions on a package's page, each marked quarantined, blocked, hidden or
replaced, with the refusal a client gets. A signed-in maintainer also sees
the package's staged versions, with their files and package.json diff
(web_stage.py). An org's page, for its members and admins, and the org
line of a package in an org's scope: web_orgs.py.

Signing in: the form checks the user's password and creates a real tarhold
token for the session — read-only, named "web session", expiring after
SESSION_SECONDS — and puts it in an HttpOnly, SameSite=Lax cookie (Secure
when the registry's URL is https). A real token rather than a signed cookie
because it can be revoked: signing out deletes it, `npm token list` shows
it, `npm token revoke` ends it, and it stops working everywhere within the
token cache's few seconds. The auth middleware accepts the cookie only for
GET and HEAD of the web pages (auth.is_web_page_read), never for the npm
API, so another site cannot use a visitor's cookie to write anything; being
read-only, the token could not write even if it leaked. The sign-in and
sign-out forms refuse a cross-site Origin.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from registry.domain.access import grant_allows
from registry.domain.errors import RegistryError, TooManyRequests
from registry.domain.mirror_policy import shown_doc
from registry.domain.packages import is_mirrored
from registry.domain.packument_views import manifest_for
from registry.domain.policy import Verdict, refusal
from registry.domain.search import local_page, parse_query, shown_entries
from registry.domain.two_factor import state_of
from registry.domain.users import (
    create_token,
    get_user,
    lookup_token,
    revoke_token,
    token_hash,
    valid_user_name,
)
from registry.http.access import Sight, may_see
from registry.http.appkeys import CONFIG, DATABASE, MIRROR, PACKAGES
from registry.http.auth import SESSION_COOKIE, caches, identity_of
from registry.http.bodies import read_form
from registry.http.org_directory import orgs_of
from registry.http.otp import OTP_MISSING, OTP_WRONG, check_code
from registry.http.sign_in import checked_password
from registry.http.urls import base_url, is_readable_name
from registry.http.web_orgs import (
    my_orgs_section,
    org_body,
    org_missing_body,
    package_org_panel,
    readable_packages,
    visible_orgs,
)
from registry.http.web_pages import (
    Frame,
    esc,
    home_body,
    layout,
    login_body,
    missing_version_body,
    not_found_body,
    package_body,
    package_view,
    policy_marks,
    search_body,
    signed_in_body,
)
from registry.http.web_stage import staged_section

LOG = logging.getLogger(__name__)

SESSION_SECONDS = 12 * 3600
SESSION_TOKEN_NAME = "web session"
RECENT = 20
MAX_RESULTS = 100
MAX_QUERY = 200
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
        " base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Pages differ per visitor (private packages): never kept by a shared cache.
    "Cache-Control": "no-store",
}

# -- helpers ----------------------------------------------------------------------


def prefix_of(request: web.Request) -> str:
    return request.app[CONFIG].url_prefix


def frame(request: web.Request, query: str = "") -> Frame:
    identity = identity_of(request)
    return Frame(
        site_title=request.app[CONFIG].web.title, prefix=prefix_of(request),
        user=identity.user if identity else None, here=request.path_qs, query=query,
    )


def html_page(request: web.Request, title: str, body: str, *, status: int = 200, query: str = "") -> web.Response:
    text = layout(frame(request, query), title, body)
    return web.Response(text=text, status=status, content_type="text/html", headers=PAGE_HEADERS)


def safe_next(value: str, prefix: str) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    home = f"{prefix}/"
    if not value.startswith("/") or value.startswith("//") or "\\" in value or not value.isprintable():
        return home
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return home
    return value


def same_origin(request: web.Request) -> bool:
    """False for a form posted from another site (browsers send Origin with every POST)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser, or an old one: SameSite=Lax still holds
    ours = urlsplit(base_url(request))
    return origin == f"{ours.scheme}://{ours.netloc}"


def session_cookie_options(request: web.Request) -> dict[str, Any]:
    return {
        "path": prefix_of(request) or "/",
        "httponly": True,
        "samesite": "Lax",
        "secure": base_url(request).startswith("https:"),
    }


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


# -- pages --------------------------------------------------------------------------


async def home(request: web.Request) -> web.Response:
    """The front page: the search box (in the frame) and recently published local packages."""
    listing = request.app[PACKAGES].listing
    names = listing.recent(Sight(request))  # most recently modified first, from the index
    recent: list[dict[str, Any]] = []
    # As the policy shows them (a package it hides entirely is left out), judged a page at a time.
    while len(recent) < RECENT:
        chunk = list(itertools.islice(names, RECENT))
        if not chunk:
            break
        recent += await shown_entries(request.app[PACKAGES], await listing.entries(chunk))
    body = home_body(recent[:RECENT], prefix_of(request)) + await my_orgs(request)
    return html_page(request, "", body)


async def my_orgs(request: web.Request) -> str:
    """The signed-in visitor's orgs (every org, for an admin), for the front page."""
    identity, directory = identity_of(request), orgs_of(request)
    if identity is None or not directory.orgs:
        return ""
    orgs = visible_orgs(directory, identity.user, admin=await is_admin(request))
    return my_orgs_section(orgs, prefix_of(request))


async def search_page(request: web.Request) -> web.Response:
    """Search by name, description and keywords, ranked (and judged by the mirror policy)
    as `/-/v1/search` ranks them."""
    query = request.query.get("q", "").strip()[:MAX_QUERY]
    words, _ = parse_query(query)
    entries: list[dict[str, Any]] = []
    total = 0
    if words:
        packages = request.app[PACKAGES]
        ranking = packages.listing.search(words, None, Sight(request))
        page = await local_page(packages, ranking, words, 0, MAX_RESULTS)
        entries, total = [entry for _, entry in page.hits], page.total
    body = search_body(query, entries, total, prefix_of(request))
    return html_page(request, f"Search: {query}" if query else "Search", body, query=query)


async def detail(request: web.Request) -> web.Response:
    """A package's page: the shown version (`?version=`, default latest), readme, versions, tags;
    a version or tag the package does not show is a 404 page."""
    name = request.match_info["name"]
    rule = may_see(request, name) if is_readable_name(name) else None
    current = None
    if rule is not None:
        via = request.headers.get("Via", "")
        try:
            current = await request.app[MIRROR].packument(name, rule.proxy, via)
        except RegistryError as exc:  # the uplinks failed (502/503): say so on a page
            body = f"<h1>Not available</h1><p>{esc(exc.message)}</p>"
            return html_page(request, "Not available", body, status=exc.status)
    if current is None:
        return not_found(request, name)
    # What `GET /{name}` shows; an admin also sees what the policy hides, marked.
    view = await request.app[PACKAGES].view(name, current)
    doc, marks = shown_doc(view, current), {}
    if view.verdict.changed and await is_admin(request):
        marks = policy_marks(name, view.verdict)
        doc = {**doc, "versions": current.doc.get("versions"), "time": current.doc.get("time")}
    wanted = request.query.get("version") or None
    if wanted is not None and manifest_for(dict(doc), wanted) is None:
        return missing_version(request, name, wanted, view.verdict)
    page = package_view(doc, wanted, marks)
    body = package_body(page, prefix_of(request), base_url(request), await org_panel(request, name))
    # Versions waiting for review, to the maintainers (and stagers) of a package published here.
    if not is_mirrored(current.doc):
        body += await staged_section(request, name, current.doc)
    return html_page(request, name, body)


async def org_panel(request: web.Request, name: str) -> str:
    """The side panel's org line of a package in an org's scope ("" for any other)."""
    org = orgs_of(request).org_for(name)
    if org is None:
        return ""
    return package_org_panel(org, name, await may_view_org(request, org.name), prefix_of(request))


async def may_view_org(request: web.Request, name: str) -> bool:
    """Whether the visitor may see org `name`'s page: a member of it, or an admin."""
    identity = identity_of(request)
    if identity is None or name not in orgs_of(request).orgs:
        return False
    return orgs_of(request).orgs[name].role(identity.user) is not None or await is_admin(request)


async def org_page(request: web.Request) -> web.Response:
    """An org's members, teams and packages (web_orgs.py); the same 404 to whoever may not see it."""
    name = request.match_info["org"]
    identity = identity_of(request)
    if identity is None or not await may_view_org(request, name):
        login = f"{prefix_of(request)}/-/web/login?" + urlencode({"next": request.path_qs})
        return html_page(request, "Not found", org_missing_body(name, identity is not None, login), status=404)
    org = orgs_of(request).orgs[name]
    body = org_body(org, identity.user, await readable_packages(request, org), prefix_of(request))
    return html_page(request, f"@{org.name}", body)


async def is_admin(request: web.Request) -> bool:
    """Whether the visitor is an admin whose credential may read the admin API (routes_admin.require_admin)."""
    identity = identity_of(request)
    if identity is None or not grant_allows(identity, "user", "*", write=False):
        return False
    profile = await get_user(request.app[DATABASE], identity.user)
    return bool(profile and profile.get("admin"))


def missing_version(request: web.Request, name: str, wanted: str, verdict: Verdict) -> web.Response:
    """404 for a `?version=` the package does not show; the refusal when the policy hides it."""
    reason = verdict.hidden.get(wanted) or verdict.hidden.get(wanted.strip().lstrip("=v").strip())
    if reason is not None:
        message = refusal(name, wanted, reason)
    else:
        message = f"{name} has no version or dist-tag {wanted}."
    return html_page(request, "Not found", missing_version_body(name, message, prefix_of(request)), status=404)


def not_found(request: web.Request, name: str) -> web.Response:
    login = f"{prefix_of(request)}/-/web/login?" + urlencode({"next": request.path_qs})
    body = not_found_body(name, identity_of(request) is not None, login)
    return html_page(request, "Not found", body, status=404)


# -- signing in and out ------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    identity = identity_of(request)
    if identity is not None:
        return html_page(request, "Signed in", signed_in_body(identity.user, prefix_of(request)))
    next_path = safe_next(request.query.get("next", ""), prefix_of(request))
    return html_page(request, "Sign in", login_body(prefix_of(request), next_path=next_path))


async def login_submit(request: web.Request) -> web.Response:
    """Check the password; on success a session token in a cookie and a redirect back."""
    prefix = prefix_of(request)
    if not same_origin(request):
        return html_page(request, "Sign in", login_body(prefix, error="Sign in from this site's own form."), status=403)
    form = await read_form(request)
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    next_path = safe_next(str(form.get("next", "")), prefix)
    user = None
    if valid_user_name(username) and password:
        # Password guessing through the form is slowed like every channel
        # (registry/http/sign_in.py): per address, so the owner elsewhere is not locked out.
        try:
            user = await checked_password(request, "web", username, password)
        except TooManyRequests as exc:
            error = f"Too many failed sign-ins; try again in {exc.headers['Retry-After']} s."
            response = html_page(request, "Sign in", login_body(prefix, username=username, error=error), status=429)
            response.headers["Retry-After"] = exc.headers["Retry-After"]
            return response
    if user is None:
        LOG.info("web sign-in refused for %s", username if valid_user_name(username) else "(invalid name)")
        body = login_body(prefix, username=username, error="Wrong username or password.", next_path=next_path)
        return html_page(request, "Sign in", body, status=401)
    if state_of(user).enabled:  # two-factor auth covers every sign-in, this one too
        try:
            await check_code(request, username, str(form.get("otp", "")), missing=OTP_MISSING, wrong=OTP_WRONG)
        except RegistryError as exc:
            body = login_body(prefix, username=username, error=exc.message, next_path=next_path)
            return html_page(request, "Sign in", body, status=exc.status)
    token, record = await create_token(
        request.app[DATABASE], username, readonly=True, name=SESSION_TOKEN_NAME,
        expires=int(time.time()) + SESSION_SECONDS,
    )
    LOG.info("web sign-in of %s (token %s)", username, record["key"])
    response = see_other(next_path)
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, **session_cookie_options(request))
    return response


async def logout(request: web.Request) -> web.Response:
    """Revoke the session's token and drop the cookie."""
    prefix = prefix_of(request)
    if not same_origin(request):
        return html_page(request, "Sign out", "<h1>Sign out</h1><p>Sign out from this site's own pages.</p>", status=403)
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        db = request.app[DATABASE]
        record = await lookup_token(db, token)
        if record is not None:
            await revoke_token(db, str(record["user"]), str(record["key"]))
            caches(request.app).forget_token(token_hash(token))
    response = see_other(f"{prefix}/")
    options = session_cookie_options(request)
    response.del_cookie(SESSION_COOKIE, path=options["path"], secure=options["secure"], httponly=True, samesite="Lax")
    return response


def setup(app: web.Application) -> None:
    """Add the web UI's routes when `web.enable`; before the package routes' catch-all."""
    config = app[CONFIG]
    if not config.web.enable:
        return
    roots = [""] + ([config.url_prefix] if config.url_prefix else [])
    for root in roots:
        router = app.router
        router.add_get(f"{root}/", home)
        router.add_get(f"{root}/-/web/search", search_page)
        router.add_get(f"{root}/-/web/detail/{{name:(?:@[^/]+/)?[^/]+}}", detail)
        router.add_get(f"{root}/-/web/org/{{org}}", org_page)
        router.add_get(f"{root}/-/web/login", login_form)
        router.add_post(f"{root}/-/web/login", login_submit)
        router.add_post(f"{root}/-/web/logout", logout)

