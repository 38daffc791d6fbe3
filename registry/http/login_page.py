"""npm's web login (`npm login`, `npm adduser` since npm 9), with a small sign-in page.

1. `POST /-/v1/login` (body `{}`, or `{"create": true}` from adduser) opens a
   session item `LOGIN`/`{id}` that expires in 10 minutes and answers
   `{loginUrl, doneUrl}`.
2. npm prints loginUrl (or opens a browser) and polls doneUrl: 202 with
   `Retry-After: 1` while the session is pending.
3. The user signs in on loginUrl's form; the session records who signed in.
4. doneUrl deletes the session (a conditional delete: exactly one poll wins),
   creates the token and answers 200 `{token}`; then 404. The token is made
   at delivery so it is never stored in clear, not even briefly.

The session id in loginUrl is unguessable and is the form's only protection:
CSRF defences beyond it are out of scope. doneUrl carries a second secret
(only its hash is stored) in its query string, so someone who sees the login
link, or an access log line, cannot collect the token.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from registry.domain.clock import now_iso
from registry.domain.errors import RegistryError
from registry.domain.two_factor import state_of
from registry.domain.users import create_token, get_user, sign_in, valid_user_name
from registry.http.appkeys import CONFIG, DATABASE
from registry.http.auth import caches
from registry.http.bodies import read_form, read_object
from registry.http.clients import client_address
from registry.http.otp import OTP_MISSING, OTP_WRONG, check_code
from registry.http.sign_in import guarded
from registry.http.urls import base_url
from storage.base import Conflict, NotFound

LOG = logging.getLogger(__name__)

LOGIN_PK = "LOGIN"
SESSION_SECONDS = 600
# Sessions one client address may open a minute (per instance): anonymous
# POSTs must not grow the database without bound.
SESSIONS_PER_MINUTE = 10
MAX_CLIENT_TEXT = 200
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - tarhold</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 24rem; margin: 4rem auto; padding: 0 1rem; }}
label {{ display: block; margin-top: 1rem; }}
input {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
button {{ margin-top: 1.5rem; padding: .5rem 1.5rem; }}
.error {{ color: #b00020; }}
.asked {{ border-left: 4px solid #c77700; padding: 0 .8rem; background: #fff8e6; }}
</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"""

FORM = """<p>{intro}</p>
{asked}{error}<form method="post" autocomplete="on">
<label>Username <input name="username" value="{username}" required autofocus
  autocapitalize="none" autocomplete="username" maxlength="64"></label>
<label>Password <input name="password" type="password" required
  autocomplete="{password_hint}"></label>
{email}<label>Authenticator code (only if your account has two-factor auth)
  <input name="otp" inputmode="numeric" autocomplete="one-time-code" maxlength="64"></label>
<button type="submit">{action}</button>
</form>
"""

EMAIL_FIELD = """<label>Email (for a new account) <input name="email" type="email"
  autocomplete="email" maxlength="254"></label>
"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    text = PAGE.format(title=html.escape(title), body=body)
    return web.Response(text=text, status=status, content_type="text/html", headers=PAGE_HEADERS)


def message_page(title: str, message: str, status: int = 200) -> web.Response:
    return page(title, f"<p>{html.escape(message)}</p>", status)


ASKED = """<div class="asked"><p><strong>Check that this was you.</strong> A program at
<code>{address}</code> ({agent}) asked at {created} to sign in. Signing in gives it
a token with all the rights of your account, as <code>npm login</code> does; you
can see and revoke it with <code>npm token list</code>. If you did not run
<code>npm login</code> just now, close this page.</p></div>
"""


def asked_by(session: dict[str, Any]) -> str:
    """Who opened this login session, for the person about to sign in (phishing links)."""
    return ASKED.format(
        address=html.escape(str(session.get("client") or "an unknown address")),
        agent=html.escape(str(session.get("agent") or "no user agent")),
        created=html.escape(str(session.get("created", ""))[:19].replace("T", " ") + " UTC"),
    )


def form_page(
    create: bool, *, username: str = "", error: str = "", status: int = 200, session: dict[str, Any] | None = None
) -> web.Response:
    title = "Create your account" if create else "Sign in"
    intro = (
        "Create an account on this registry, or sign in with an existing one, to finish `npm adduser`."
        if create else "Sign in to this registry to finish `npm login`."
    )
    body = FORM.format(
        intro=html.escape(intro),
        asked=asked_by(session) if session is not None else "",
        error=f'<p class="error">{html.escape(error)}</p>\n' if error else "",
        username=html.escape(username),
        password_hint="new-password" if create else "current-password",
        email=EMAIL_FIELD if create else "",
        action="Continue" if create else "Sign in",
    )
    return page(title, body, status)


def expired_page() -> web.Response:
    return message_page("Link expired", "This login link is unknown or has expired. Run npm login again.", 404)


def done_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def start_login(request: web.Request) -> web.Response:
    """`POST /-/v1/login`: a new session, and where to sign in and to poll."""
    body = await read_object(request, empty_ok=True)
    address = client_address(request) or "?"
    caches(request.app).limiter.check_named(f"web-login-session:{address}", SESSIONS_PER_MINUTE,
                                            "too many login sessions from your address")
    session_id = secrets.token_urlsafe(24)
    done_secret = secrets.token_urlsafe(24)
    session = {
        "state": "pending", "create": body.get("create") is True,
        "done_hash": done_digest(done_secret), "created": now_iso(),
        "client": address[:MAX_CLIENT_TEXT],
        "agent": request.headers.get("User-Agent", "")[:MAX_CLIENT_TEXT],
    }
    expires = int(time.time()) + SESSION_SECONDS
    await request.app[DATABASE].put(LOGIN_PK, session_id, session, if_absent=True, expires=expires)
    base = base_url(request)
    return web.json_response(
        {
            "loginUrl": f"{base}/-/v1/login/{session_id}",
            "doneUrl": f"{base}/-/v1/done/{session_id}?secret={done_secret}",
        },
        dumps=lambda o: orjson.dumps(o).decode(),
        headers={"Cache-Control": "no-store"},
    )


async def _session(request: web.Request) -> dict[str, Any] | None:
    try:
        return await request.app[DATABASE].get(LOGIN_PK, request.match_info["session"])
    except NotFound:
        return None


async def show_form(request: web.Request) -> web.Response:
    """`GET loginUrl`: the sign-in form."""
    session = await _session(request)
    if session is None:
        return expired_page()
    if session["state"] != "pending":
        return message_page("Signed in", "You are signed in. You can close this page.")
    return form_page(bool(session.get("create")), session=session)


async def submit_form(request: web.Request) -> web.Response:
    """`POST loginUrl`: check the password (or register) and mark the session done."""
    session = await _session(request)
    if session is None:
        return expired_page()
    if session["state"] != "pending":
        return message_page("Signed in", "You are signed in. You can close this page.")
    create = bool(session.get("create"))
    form = await read_form(request)
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    email = str(form.get("email", "")).strip() or None
    if not valid_user_name(username) or not password:
        error = "Enter a username (lowercase letters, digits, '-', '_', '.') and a password."
        return form_page(create, username=username, error=error, status=400, session=session)
    db = request.app[DATABASE]
    try:
        await guarded(request, "web-login", username, lambda: sign_in(
            db, username, password, email=email,
            max_users=request.app[CONFIG].auth.max_users, create=create,
        ))
        if state_of(await get_user(db, username)).enabled:
            await check_code(request, username, str(form.get("otp", "")), missing=OTP_MISSING, wrong=OTP_WRONG)
    except RegistryError as exc:
        return form_page(create, username=username, error=exc.message, status=exc.status, session=session)
    done = {**{k: v for k, v in session.items() if k != "ver"}, "state": "done", "user": username}
    expires = int(time.time()) + SESSION_SECONDS
    try:
        await db.put(LOGIN_PK, request.match_info["session"], done, if_ver=session["ver"], expires=expires)
    except Conflict:
        return message_page("Signed in", "This login was already completed. You can close this page.")
    LOG.info("web login of %s completed", username)
    return message_page(
        "Signed in", f"Signed in as {username}. You can close this page and return to the terminal."
    )


async def poll_done(request: web.Request) -> web.Response:
    """`GET doneUrl`: 202 while pending; once done, a new token (exactly once); else 404."""
    headers = {"Cache-Control": "no-store"}
    session = await _session(request)
    secret = request.query.get("secret", "")
    if session is None or not hmac.compare_digest(done_digest(secret), str(session.get("done_hash"))):
        return web.json_response({"error": "login session not found or expired"}, status=404, headers=headers)
    if session["state"] == "pending":
        return web.json_response({}, status=202, headers={**headers, "Retry-After": "1"})
    db = request.app[DATABASE]
    try:
        await db.delete(LOGIN_PK, request.match_info["session"], if_ver=session["ver"])
    except (NotFound, Conflict):
        return web.json_response({"error": "login session not found or expired"}, status=404, headers=headers)
    token, _ = await create_token(db, str(session["user"]), name="npm web login")
    return web.json_response({"token": token}, headers=headers)


def setup_web_login(app: web.Application) -> None:
    """Add the web login routes to `app`."""
    app.router.add_post("/-/v1/login", start_login)
    app.router.add_get("/-/v1/login/{session}", show_form)
    app.router.add_post("/-/v1/login/{session}", submit_form)
    app.router.add_get("/-/v1/done/{session}", poll_done)
