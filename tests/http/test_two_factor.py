"""Two-factor auth over HTTP as npm drives it (profile enable-2fa, --otp), on every backend."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from .auth.helpers import form_action
from .conftest import MakeClient
from .otp_helpers import (
    PROFILE,
    assert_asks_for_otp,
    enable_2fa,
    with_otp,
)
from .packages import path_of, publish, publish_body
from .users import PASSWORD, add_user, bearer, user_path


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()


async def test_enrolment_shows_in_the_profile_and_publishes_then_need_a_code(client: TestClient) -> None:
    token = await add_user(client, "alice")
    assert (await (await client.get(PROFILE, headers=bearer(token))).json())["tfa"] is False
    app = await enable_2fa(client, token)
    profile = await (await client.get(PROFILE, headers=bearer(token))).json()
    assert profile["tfa"] == {"pending": False, "mode": "auth-and-writes"}

    body = publish_body("two-fa-pkg", "1.0.0")
    await assert_asks_for_otp(await client.put(path_of("two-fa-pkg"), json=body, headers=bearer(token)))
    code = app.code()
    assert (await client.put(path_of("two-fa-pkg"), json=body, headers=with_otp(token, code))).status == 201
    # A code works once.
    again = publish_body("two-fa-pkg", "1.0.1")
    response = await client.put(path_of("two-fa-pkg"), json=again, headers=with_otp(token, code))
    await assert_asks_for_otp(response)
    assert "used already" in (await response.json())["error"]
    # dist-tags and token creation are writes too; a recovery code works, once.
    tag = "/-/package/two-fa-pkg/dist-tags/beta"
    await assert_asks_for_otp(await client.put(tag, json="1.0.0", headers=bearer(token)))
    recovery = app.recovery.pop()
    assert (await client.put(tag, json="1.0.0", headers=with_otp(token, recovery))).status == 201
    await assert_asks_for_otp(await client.put(tag, json="1.0.0", headers=with_otp(token, recovery)))
    tokens = {"password": PASSWORD}
    await assert_asks_for_otp(await client.post("/-/npm/v1/tokens", json=tokens, headers=bearer(token)))
    assert (await client.post("/-/npm/v1/tokens", json=tokens, headers=with_otp(token, app.code()))).status == 201


async def test_login_and_profile_changes_need_a_code_in_auth_only_mode_but_publishes_do_not(
    client: TestClient,
) -> None:
    token = await add_user(client, "bob")
    app = await enable_2fa(client, token, "auth-only")
    assert await publish(client, token, "auth-only-pkg", "1.0.0") == 201
    login = {"name": "bob", "password": PASSWORD}
    await assert_asks_for_otp(await client.put(user_path("bob"), json=login))
    response = await client.put(user_path("bob"), json=login, headers={"npm-otp": app.code()})
    assert response.status == 201
    change = {"fullname": "Bob"}
    await assert_asks_for_otp(await client.post(PROFILE, json=change, headers=bearer(token)))
    assert (await client.post(PROFILE, json=change, headers=with_otp(token, app.code()))).status == 200
    # Turning it off takes the password and a code.
    off = {"tfa": {"password": PASSWORD, "mode": "disable"}}
    await assert_asks_for_otp(await client.post(PROFILE, json=off, headers=bearer(token)))
    response = await client.post(PROFILE, json=off, headers=with_otp(token, app.code()))
    assert response.status == 200 and (await response.json())["tfa"] is False
    assert (await client.put(user_path("bob"), json=login)).status == 201


async def test_a_bypass_token_publishes_without_a_code_unless_the_package_says_mfa_publish(
    client: TestClient,
) -> None:
    token = await add_user(client, "carol")
    plain = {"password": PASSWORD, "bypass_2fa": True}
    response = await client.post("/-/npm/v1/tokens", json=plain, headers=bearer(token))
    assert response.status == 403 and "two-factor auth on" in (await response.json())["error"]
    app = await enable_2fa(client, token)
    response = await client.post("/-/npm/v1/tokens", json=plain, headers=with_otp(token, app.code()))
    assert response.status == 201
    automation = (await response.json())["token"]
    assert await publish(client, automation, "ci-pkg", "1.0.0") == 201
    access = "/-/package/ci-pkg/access"
    mfa_publish = {"publish_requires_tfa": True, "automation_token_overrides_tfa": False}
    await assert_asks_for_otp(await client.post(access, json=mfa_publish, headers=bearer(token)))
    assert (await client.post(access, json=mfa_publish, headers=with_otp(token, app.code()))).status == 200
    body = publish_body("ci-pkg", "1.0.1")
    await assert_asks_for_otp(await client.put(path_of("ci-pkg"), json=body, headers=bearer(automation)))
    mfa_automation = {"publish_requires_tfa": True, "automation_token_overrides_tfa": True}
    assert (await client.post(access, json=mfa_automation, headers=with_otp(token, app.code()))).status == 200
    assert (await client.put(path_of("ci-pkg"), json=body, headers=bearer(automation))).status == 201


async def test_a_package_requiring_2fa_refuses_a_user_without_it(client: TestClient) -> None:
    owner = await add_user(client, "dave")
    assert await publish(client, owner, "strict-pkg", "1.0.0") == 201
    access = "/-/package/strict-pkg/access"
    body = {"publish_requires_tfa": True, "automation_token_overrides_tfa": False}
    assert (await client.post(access, json=body, headers=bearer(owner))).status == 200
    response = await client.put(path_of("strict-pkg"), json=publish_body("strict-pkg", "1.0.1"), headers=bearer(owner))
    assert response.status == 403 and "requires two-factor auth" in (await response.json())["error"]
    assert (await client.post(access, json={"access": "public"}, headers=bearer(owner))).status == 400
    other = await add_user(client, "eve")
    assert (await client.post(access, json={"publish_requires_tfa": False}, headers=bearer(other))).status == 403


async def test_wrong_codes_are_refused_and_throttled_like_passwords(client: TestClient) -> None:
    token = await add_user(client, "frank")
    await enable_2fa(client, token)
    body = publish_body("guess-pkg", "1.0.0")
    statuses = []
    for _ in range(12):
        response = await client.put(path_of("guess-pkg"), json=body, headers=with_otp(token, "000000"))
        statuses.append(response.status)
    assert statuses[0] == 401 and 429 in statuses


async def test_enrolment_refuses_a_wrong_first_code_and_bad_bodies(client: TestClient) -> None:
    token = await add_user(client, "gina")
    for bad in ({"tfa": {"password": PASSWORD, "mode": "always"}}, {"tfa": "on"}, {"tfa": ["1", "2"]}):
        assert (await client.post(PROFILE, json=bad, headers=bearer(token))).status == 400, bad
    assert (await client.post(PROFILE, json={"tfa": ["123456"]}, headers=bearer(token))).status == 400
    wrong = {"tfa": {"password": "not it at all", "mode": "auth-only"}}
    assert (await client.post(PROFILE, json=wrong, headers=bearer(token))).status == 401
    await client.post(PROFILE, json={"tfa": {"password": PASSWORD, "mode": "auth-only"}}, headers=bearer(token))
    response = await client.post(PROFILE, json={"tfa": ["000000"]}, headers=bearer(token))
    assert response.status == 400 and "does not match" in (await response.json())["error"]
    profile = await (await client.get(PROFILE, headers=bearer(token))).json()
    assert profile["tfa"] == {"pending": True, "mode": "auth-only"}


async def test_the_config_can_require_2fa_for_every_writer(make_client: MakeClient) -> None:
    client = await make_client(auth={"require_2fa": True})
    token = await add_user(client, "hal")
    response = await client.put(path_of("req-pkg"), json=publish_body("req-pkg", "1.0.0"), headers=bearer(token))
    assert response.status == 403 and "requires two-factor auth for writes" in (await response.json())["error"]
    app = await enable_2fa(client, token)
    body = publish_body("req-pkg", "1.0.0")
    assert (await client.put(path_of("req-pkg"), json=body, headers=with_otp(token, app.code()))).status == 201


async def test_reviewing_a_staged_version_needs_a_code_and_a_package_can_require_staging(
    client: TestClient,
) -> None:
    token = await add_user(client, "ivy")
    app = await enable_2fa(client, token)
    body = publish_body("review-pkg", "1.0.0")
    assert (await client.put(path_of("review-pkg"), json=body, headers=with_otp(token, app.code()))).status == 201
    access = "/-/package/review-pkg/access"
    response = await client.post(access, json={"publish_requires_stage": True}, headers=with_otp(token, app.code()))
    assert response.status == 200 and (await response.json())["publish_requires_stage"] is True
    direct = await client.put(path_of("review-pkg"), json=publish_body("review-pkg", "1.1.0"), headers=bearer(token))
    assert direct.status == 403 and "npm stage publish" in (await direct.json())["error"]
    # Staging needs no code (that is its point); approving and rejecting do.
    staged = await client.post("/-/stage/package/review-pkg", json=publish_body("review-pkg", "1.1.0"),
                               headers=bearer(token))
    assert staged.status == 201, await staged.text()
    stage_id = (await staged.json())["stageId"]
    await assert_asks_for_otp(await client.post(f"/-/stage/{stage_id}/approve", headers=bearer(token)))
    await assert_asks_for_otp(await client.delete(f"/-/stage/{stage_id}", headers=bearer(token)))
    response = await client.post(f"/-/stage/{stage_id}/approve", headers=with_otp(token, app.recovery.pop()))
    assert response.status == 201, await response.text()
    doc = await (await client.get(path_of("review-pkg"))).json()
    assert doc["dist-tags"]["latest"] == "1.1.0" and doc["versions"]["1.1.0"]["_stage"]["approvedBy"] == "ivy"


async def test_both_sign_in_pages_ask_a_2fa_user_for_a_code(client: TestClient) -> None:
    token = await add_user(client, "jack")
    app = await enable_2fa(client, token, "auth-only")
    form = {"username": "jack", "password": PASSWORD, "next": "/"}
    response = await client.post("/-/web/login", data=form, allow_redirects=False)
    assert response.status == 401 and "two-factor auth" in await response.text()
    response = await client.post("/-/web/login", data={**form, "otp": app.code()}, allow_redirects=False)
    assert response.status == 303
    # npm login's web page (the default of npm 9+): the same.
    urls = await (await client.post("/-/v1/login", json={})).json()
    action = form_action(urls["loginUrl"])
    response = await client.post(action, data={"username": "jack", "password": PASSWORD})
    assert response.status == 401 and "two-factor auth" in await response.text()
    response = await client.post(action, data={"username": "jack", "password": PASSWORD, "otp": "000000"})
    assert response.status == 401 and "wrong or was used" in await response.text()
    response = await client.post(action, data={"username": "jack", "password": PASSWORD, "otp": app.code()})
    assert response.status == 200 and "Signed in as jack" in await response.text()


async def test_admin_api_writes_take_the_admins_code(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARHOLD_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.delenv("TARHOLD_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("TARHOLD_ADMIN_USER", raising=False)
    client = await make_client()
    token = await add_user(client, "admin")  # npm login as the bootstrapped admin
    app = await enable_2fa(client, token)
    assert (await client.get("/-/tarhold/users", headers=bearer(token))).status == 200  # reads need none
    rule = {"kind": "block", "package": "left-pad"}
    await assert_asks_for_otp(await client.post("/-/tarhold/policy", json=rule, headers=bearer(token)))
    response = await client.post("/-/tarhold/policy", json=rule, headers=with_otp(token, app.code()))
    assert response.status == 201
