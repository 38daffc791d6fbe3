"""Trusted publishing over HTTP, on every backend: trust configurations, the OIDC exchange,
and what the exchanged token can and cannot do. The CI job's id tokens come from a fake
OIDC issuer (tests/support/fake_oidc.py); the npm CLI's side is tests/e2e/test_npm_trust.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.domain.trusted_tokens import exchanges
from registry.http.appkeys import DATABASE
from tests.support.fake_oidc import FakeIssuer, github_claims, kubernetes_claims

from .conftest import MakeClient
from .otp_helpers import assert_asks_for_otp, enable_2fa, with_otp
from .packages import packument, path_of, publish, publish_body
from .users import PASSWORD, add_user, bearer

AUDIENCE = "npm:127.0.0.1"
GITHUB_TRUST = {
    "type": "github", "claims": {"repository": "acme/widget", "workflow_ref": {"file": "publish.yml"}},
    "permissions": ["createPackage"],
}


@pytest.fixture
async def issuer() -> AsyncIterator[FakeIssuer]:
    async with FakeIssuer() as fake:
        yield fake


@pytest.fixture
async def client(make_client: MakeClient, issuer: FakeIssuer) -> TestClient:
    return await make_client(
        packages={
            "private-*": {"access": "$authenticated", "publish": "$authenticated"},
            "**": {"access": "$all", "publish": "$authenticated"},
        },
        trusted_publishing={"issuers": [
            {"type": "github", "issuer": issuer.url},
            {"name": "k8s", "type": "generic", "issuer": "http://127.0.0.1:9/k8s", "jwks_uri": issuer.jwks_uri},
        ]},
    )


def trust_path(name: str, *rest: str) -> str:
    return "/-/package/" + path_of(name)[1:] + "/trust" + "".join(f"/{r}" for r in rest)


async def add_trust(client: TestClient, token: str, name: str, config: dict[str, Any] = GITHUB_TRUST) -> str:
    response = await client.post(trust_path(name), json=[config], headers=bearer(token))
    assert response.status == 200, await response.text()
    (created,) = await response.json()
    return str(created["id"])


async def exchange(client: TestClient, name: str, id_token: str) -> Any:
    return await client.post(
        "/-/npm/v1/oidc/token/exchange/package/" + path_of(name)[1:], headers=bearer(id_token)
    )


async def trusted_token(client: TestClient, issuer: FakeIssuer, name: str, **claims: Any) -> str:
    response = await exchange(client, name, issuer.token({**github_claims(**claims), "aud": AUDIENCE}))
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["token_type"] == "oidc" and body["expires"] > body["created"]
    return str(body["token"])


async def test_maintainers_add_list_and_revoke_trust_as_npm_trust_does(client: TestClient) -> None:
    alice, bob = await add_user(client, "alice"), await add_user(client, "bob")
    assert await publish(client, alice, "widget", "1.0.0") == 201
    config_id = await add_trust(client, alice, "widget")
    listed = await (await client.get(trust_path("widget"), headers=bearer(alice))).json()
    assert listed == [{"id": config_id, **GITHUB_TRUST}]
    # Not a maintainer, a copy, a type no issuer serves, a bad body, a package that is not there.
    assert (await client.get(trust_path("widget"), headers=bearer(bob))).status == 403
    assert (await client.post(trust_path("widget"), json=[GITHUB_TRUST], headers=bearer(alice))).status == 409
    for bad in ({**GITHUB_TRUST, "type": "gitlab"}, {**GITHUB_TRUST, "permissions": ["everything"]},
                {**GITHUB_TRUST, "claims": {"workflow_ref": {"file": "a.yml"}}}, "nonsense"):
        response = await client.post(trust_path("widget"), json=[bad], headers=bearer(alice))
        assert response.status == 400, bad
        assert "trusted publisher configuration" in (await response.json())["error"]
    assert (await client.get(trust_path("nothing-here"), headers=bearer(alice))).status == 404
    assert (await client.get(trust_path("widget"))).status == 401
    assert (await client.delete(trust_path("widget", "not-a-uuid"), headers=bearer(alice))).status == 400
    assert (await client.delete(trust_path("widget", config_id), headers=bearer(bob))).status == 403
    assert (await client.delete(trust_path("widget", config_id), headers=bearer(alice))).status == 204
    assert (await client.delete(trust_path("widget", config_id), headers=bearer(alice))).status == 404
    assert await (await client.get(trust_path("widget"), headers=bearer(alice))).json() == []


async def test_trust_changes_take_the_maintainers_code_and_never_a_bypass_token(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    assert await publish(client, alice, "widget", "1.0.0") == 201
    app = await enable_2fa(client, alice)
    await assert_asks_for_otp(await client.post(trust_path("widget"), json=[GITHUB_TRUST], headers=bearer(alice)))
    response = await client.post(trust_path("widget"), json=[GITHUB_TRUST], headers=with_otp(alice, app.code()))
    assert response.status == 200, await response.text()
    response = await client.post(
        "/-/npm/v1/tokens", json={"password": PASSWORD, "bypass_2fa": True}, headers=with_otp(alice, app.code()))
    assert response.status == 201, await response.text()
    bypass = (await response.json())["token"]
    assert (await client.get(trust_path("widget"), headers=with_otp(bypass, app.code()))).status == 403


async def test_a_trusted_job_publishes_and_the_version_records_its_configuration(
    client: TestClient, issuer: FakeIssuer
) -> None:
    alice = await add_user(client, "alice")
    assert await publish(client, alice, "widget", "1.0.0") == 201
    config_id = await add_trust(client, alice, "widget")
    token = await trusted_token(client, issuer, "widget")
    assert await publish(client, token, "widget", "1.1.0") == 201
    manifest = (await packument(client, "widget"))["versions"]["1.1.0"]
    assert manifest["_npmUser"]["trustedPublisher"] == {"id": "github", "oidcConfigId": config_id}
    assert manifest["_npmUser"]["name"] == "alice"
    (record,) = await exchanges(client.server.app[DATABASE], "widget")
    assert record["config"] == config_id and record["claims"]["repository"] == "acme/widget"
    assert record["claims"]["sub"] == "repo:acme/widget:ref:refs/heads/main"
    # Never listed among the maintainer's tokens.
    tokens = await (await client.get("/-/npm/v1/tokens", headers=bearer(alice))).json()
    assert all(not t["key"].startswith("oidc-") for t in tokens["objects"])


def refused_tokens(issuer: FakeIssuer) -> dict[str, str]:
    job = {**github_claims(), "aud": AUDIENCE}
    return {
        "another repository": issuer.token({**github_claims(repository="mallory/widget"), "aud": AUDIENCE}),
        "another workflow": issuer.token({**github_claims(workflow="other.yml"), "aud": AUDIENCE}),
        "expired": issuer.token(job, lifetime=-600),
        "issued in the future": issuer.token(job, issued_at=time.time() + 3600),
        "wrong audience": issuer.token({**job, "aud": "npm:registry.example.com"}),
        "unknown issuer": issuer.token({**job, "iss": "http://127.0.0.1:9/elsewhere"}),
        "key not in the JWKS": issuer.token(job, key=issuer.stranger_key()),
        "stranger key under a published kid": issuer.token(job, key=issuer.stranger_key(same_kid=True)),
        "alg none": issuer.forged_token(job, attack="none"),
        "HMAC keyed with the public key": issuer.forged_token(job, attack="hs256"),
        "not a JWT": "not-a-token",
    }


async def test_every_failed_check_is_refused_without_a_token(client: TestClient, issuer: FakeIssuer) -> None:
    alice = await add_user(client, "alice")
    for name in ("widget", "untrusted"):
        assert await publish(client, alice, name, "1.0.0") == 201
    await add_trust(client, alice, "widget")
    for why, id_token in refused_tokens(issuer).items():
        response = await exchange(client, "widget", id_token)
        assert response.status in (401, 403), why
        body = await response.json()
        assert body["message"].startswith("OIDC token exchange error"), why
        assert "token" not in body, why
    good = issuer.token({**github_claims(), "aud": AUDIENCE})
    assert (await exchange(client, "untrusted", good)).status == 403  # no trust configuration
    assert (await exchange(client, "nothing-here", good)).status == 403
    assert (await client.post("/-/npm/v1/oidc/token/exchange/package/widget")).status == 401
    assert await exchanges(client.server.app[DATABASE], "widget") == []


async def test_the_exchanged_token_publishes_its_package_and_nothing_else(
    client: TestClient, issuer: FakeIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await add_user(client, "alice")
    for name in ("widget", "gadget", "private-thing"):
        assert await publish(client, alice, name, "1.0.0") == 201
    await add_trust(client, alice, "widget")
    token = await trusted_token(client, issuer, "widget")
    assert await publish(client, token, "gadget", "1.1.0") == 403
    assert (await client.get(path_of("private-thing"), headers=bearer(token))).status == 403
    assert (await client.get(path_of("gadget"), headers=bearer(token))).status == 200  # public reads stay
    refused = [
        client.post("/-/npm/v1/tokens", json={"password": "x"}, headers=bearer(token)),
        client.post("/-/npm/v1/user", json={"email": "evil@example.com"}, headers=bearer(token)),
        client.get("/-/npm/v1/tokens", headers=bearer(token)),
        client.get(trust_path("widget"), headers=bearer(token)),
        client.post(trust_path("widget"), json=[GITHUB_TRUST], headers=bearer(token)),
        client.put("/-/package/widget/dist-tags/next", json="1.0.0", headers=bearer(token)),
        client.post("/-/package/widget/access", json={"publish_requires_tfa": False}, headers=bearer(token)),
        client.delete("/widget/-rev/1", headers=bearer(token)),
    ]
    for request in refused:
        response = await request
        assert response.status == 403, (response.url, await response.text())
    body = publish_body("widget", "1.0.1")
    body["versions"]["1.0.1"]["deprecated"] = "no"
    assert (await client.put(path_of("widget"), json=body, headers=bearer(token))).status == 201
    # At its expiry it stops working.
    later = time.time() + 3600
    monkeypatch.setattr("registry.http.auth.time.time", lambda: later)
    response = await client.put(path_of("widget"), json=publish_body("widget", "1.0.2"), headers=bearer(token))
    assert response.status == 401 and "expired" in (await response.json())["error"]


async def test_permissions_of_the_configuration_limit_the_token(client: TestClient, issuer: FakeIssuer) -> None:
    alice = await add_user(client, "alice")
    assert await publish(client, alice, "widget", "1.0.0") == 201
    await add_trust(client, alice, "widget", {**GITHUB_TRUST, "permissions": ["createStagedPackage", "manageDistTags"]})
    token = await trusted_token(client, issuer, "widget")
    assert await publish(client, token, "widget", "1.1.0") == 403
    response = await client.put("/-/package/widget/dist-tags/beta", json="1.0.0", headers=bearer(token))
    assert response.status == 201, await response.text()


async def test_a_maintainer_who_left_takes_the_trust_they_made_with_them(
    client: TestClient, issuer: FakeIssuer
) -> None:
    alice, bob = await add_user(client, "alice"), await add_user(client, "bob")
    assert await publish(client, alice, "widget", "1.0.0") == 201
    response = await client.put("/widget/-rev/x", json={"_id": "widget", "name": "widget", "maintainers": [
        {"name": "alice", "email": "alice@example.com"}, {"name": "bob", "email": "bob@example.com"}]},
        headers=bearer(alice))
    assert response.status in (200, 201), await response.text()
    await add_trust(client, bob, "widget")
    response = await client.put("/widget/-rev/x", json={"_id": "widget", "name": "widget", "maintainers": [
        {"name": "alice", "email": "alice@example.com"}]}, headers=bearer(alice))
    assert response.status in (200, 201), await response.text()
    response = await exchange(client, "widget", issuer.token({**github_claims(), "aud": AUDIENCE}))
    assert response.status == 403
    assert "bob" in (await response.json())["message"]


async def test_keys_are_cached_and_fetched_again_for_a_rotated_key(client: TestClient, issuer: FakeIssuer) -> None:
    alice = await add_user(client, "alice")
    assert await publish(client, alice, "widget", "1.0.0") == 201
    await add_trust(client, alice, "widget")
    issuer.reset_counts()
    for _ in range(3):
        await trusted_token(client, issuer, "widget")
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)
    issuer.rotate()
    await trusted_token(client, issuer, "widget")
    assert issuer.jwks_fetches == 2
    for _ in range(3):  # made-up key ids do not make it fetch again and again
        await exchange(client, "widget", issuer.token(github_claims(), key=issuer.stranger_key()))
    assert issuer.jwks_fetches == 2


async def test_a_generic_issuer_matches_the_claims_its_configuration_names(
    client: TestClient, issuer: FakeIssuer
) -> None:
    alice = await add_user(client, "alice")
    assert await publish(client, alice, "widget", "1.0.0") == 201
    await add_trust(client, alice, "widget", {
        "type": "k8s", "claims": {"sub": "system:serviceaccount:ci:publisher"}, "permissions": ["createPackage"]})
    k8s = "http://127.0.0.1:9/k8s"
    other = issuer.token({**kubernetes_claims(service_account="intruder"), "iss": k8s, "aud": AUDIENCE})
    assert (await exchange(client, "widget", other)).status == 403
    good = issuer.token({**kubernetes_claims(), "iss": k8s, "aud": AUDIENCE})
    response = await exchange(client, "widget", good)
    assert response.status == 201, await response.text()
    assert await publish(client, (await response.json())["token"], "widget", "2.0.0") == 201
