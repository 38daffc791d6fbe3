"""The fake OIDC issuer serves discovery, a JWKS and GitHub's id-token request, and its tokens verify with PyJWT."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest

from tests.support.fake_oidc import (
    FakeIssuer,
    circleci_claims,
    github_claims,
    gitlab_claims,
    kubernetes_claims,
)

AUDIENCE = "npm:registry.example.com"


@pytest.fixture
async def issuer() -> AsyncIterator[FakeIssuer]:
    async with FakeIssuer() as fake:
        yield fake


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def fetch_json(client: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with client.get(url, **kwargs) as response:
        return response.status, await response.json()


async def fetch_jwks(client: aiohttp.ClientSession, issuer: FakeIssuer) -> jwt.PyJWKSet:
    status, body = await fetch_json(client, issuer.jwks_uri)
    assert status == 200
    return jwt.PyJWKSet.from_dict(body)


def verify(jwks: jwt.PyJWKSet, token: str, issuer: FakeIssuer) -> dict[str, Any]:
    """Verify as a registry would: key by the header's kid, algorithm pinned to the key's."""
    key = jwks[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key, algorithms=[key.algorithm_name], audience=AUDIENCE, issuer=issuer.url)


async def test_discovery_names_the_issuer_and_its_jwks(issuer: FakeIssuer, client: aiohttp.ClientSession) -> None:
    status, discovery = await fetch_json(client, issuer.discovery_url)
    assert status == 200
    assert discovery["issuer"] == issuer.url
    assert discovery["jwks_uri"] == issuer.url + "/jwks"
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    _, jwks = await fetch_json(client, discovery["jwks_uri"])
    published = [(key["kty"], key["alg"], key["use"]) for key in jwks["keys"]]
    assert published == [("RSA", "RS256", "sig"), ("EC", "ES256", "sig")]
    assert {key["kid"] for key in jwks["keys"]} == {key.kid for key in issuer.keys}
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_tokens_verify_against_the_published_jwks(
    issuer: FakeIssuer, client: aiohttp.ClientSession, alg: str
) -> None:
    jwks = await fetch_jwks(client, issuer)
    token = issuer.token({**github_claims(), "aud": AUDIENCE}, alg=alg)
    assert jwt.get_unverified_header(token)["alg"] == alg
    claims = verify(jwks, token, issuer)
    assert claims["sub"] == "repo:acme/widget:ref:refs/heads/main"
    assert claims["iat"] == claims["nbf"] and claims["exp"] == claims["iat"] + 600 and claims["jti"]


async def test_given_claims_override_the_defaults(issuer: FakeIssuer, client: aiohttp.ClientSession) -> None:
    jwks = await fetch_jwks(client, issuer)
    with pytest.raises(jwt.InvalidIssuerError):
        verify(jwks, issuer.token({"aud": AUDIENCE, "iss": "https://other.example.com"}), issuer)
    with pytest.raises(jwt.InvalidAudienceError):
        verify(jwks, issuer.token({"aud": "npm:other.example.com"}), issuer)


async def test_an_expired_token_is_refused(issuer: FakeIssuer, client: aiohttp.ClientSession) -> None:
    jwks = await fetch_jwks(client, issuer)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(jwks, issuer.token({"aud": AUDIENCE}, lifetime=-60), issuer)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(jwks, issuer.token({"aud": AUDIENCE}, issued_at=time.time() - 3600), issuer)


async def test_a_stranger_key_fails_verification(issuer: FakeIssuer, client: aiohttp.ClientSession) -> None:
    jwks = await fetch_jwks(client, issuer)
    unknown_kid = issuer.token({"aud": AUDIENCE}, key=issuer.stranger_key())
    with pytest.raises(KeyError):
        verify(jwks, unknown_kid, issuer)
    impostor = issuer.stranger_key("ES256", same_kid=True)
    assert impostor.kid == issuer.signing_key("ES256").kid
    with pytest.raises(jwt.InvalidSignatureError):
        verify(jwks, issuer.token({"aud": AUDIENCE}, key=impostor), issuer)


async def test_forged_tokens_fail_verification(issuer: FakeIssuer, client: aiohttp.ClientSession) -> None:
    jwks = await fetch_jwks(client, issuer)
    rsa_key = jwks[issuer.signing_key("RS256").kid]
    for attack in ("none", "hs256"):
        with pytest.raises(jwt.InvalidAlgorithmError):
            jwt.decode(issuer.forged_token({"aud": AUDIENCE}, attack=attack), rsa_key, algorithms=["RS256"])


async def test_rotation_publishes_a_new_kid_and_signs_with_it(
    issuer: FakeIssuer, client: aiohttp.ClientSession
) -> None:
    before = await fetch_jwks(client, issuer)
    old = issuer.signing_key("RS256")
    new = issuer.rotate("RS256", retire=True)
    token = issuer.token({"aud": AUDIENCE})
    assert jwt.get_unverified_header(token)["kid"] == new.kid
    with pytest.raises(KeyError):
        verify(before, token, issuer)
    after = await fetch_jwks(client, issuer)
    assert verify(after, token, issuer)["aud"] == AUDIENCE
    assert old.kid not in {key.key_id for key in after.keys}
    assert issuer.jwks_fetches == 2


async def test_the_id_token_request_needs_its_bearer(issuer: FakeIssuer, client: aiohttp.ClientSession) -> None:
    url = f"{issuer.token_request_url}?audience={AUDIENCE}"
    assert (await fetch_json(client, url))[0] == 401
    assert (await fetch_json(client, url, headers={"Authorization": "Bearer wrong"}))[0] == 401
    issuer.github_job = github_claims("acme/gadget", environment="prod")
    bearer = {"Authorization": f"Bearer {issuer.request_token}"}
    status, body = await fetch_json(client, url, headers=bearer)
    assert status == 200
    claims = verify(await fetch_jwks(client, issuer), body["value"], issuer)
    assert claims["sub"] == "repo:acme/gadget:environment:prod" and claims["environment"] == "prod"
    assert issuer.token_audiences == [AUDIENCE] and issuer.token_requests == 3
    assert issuer.github_actions_env()["ACTIONS_ID_TOKEN_REQUEST_URL"] == issuer.token_request_url


async def test_faults_break_discovery_and_jwks(issuer: FakeIssuer, client: aiohttp.ClientSession) -> None:
    issuer.discovery_status = issuer.jwks_status = 500
    assert (await fetch_json(client, issuer.discovery_url))[0] == 500
    assert (await fetch_json(client, issuer.jwks_uri))[0] == 500
    issuer.clear_faults()
    issuer.discovery_issuer = "https://issuer.example.com"
    assert (await fetch_json(client, issuer.discovery_url))[1]["issuer"] == "https://issuer.example.com"
    issuer.jwks_delay = 30.0
    with pytest.raises(asyncio.TimeoutError):
        await fetch_json(client, issuer.jwks_uri, timeout=aiohttp.ClientTimeout(total=0.1))
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (2, 2)


def test_claim_builders_make_each_providers_subject() -> None:
    github = github_claims(workflow="release.yml", ref="refs/tags/v1.2.0")
    workflow_ref = "acme/widget/.github/workflows/release.yml@refs/tags/v1.2.0"
    assert github["workflow_ref"] == github["job_workflow_ref"] == workflow_ref
    assert (github["ref_type"], github["repository_owner"], "environment" in github) == ("tag", "acme", False)
    gitlab = gitlab_claims(environment="prod")
    assert gitlab["sub"] == "project_path:acme/widget:ref_type:branch:ref:main"
    assert gitlab["ci_config_ref_uri"] == "gitlab.example.com/acme/widget//.gitlab-ci.yml@refs/heads/main"
    assert (gitlab["namespace_path"], gitlab["environment"]) == ("acme", "prod")
    circleci = circleci_claims("org-1", "project-1", "definition-1", "git.example.com/acme/widget", ["context-1"])
    assert circleci["oidc.circleci.com/org-id"] == "org-1"
    assert circleci["oidc.circleci.com/pipeline-definition-id"] == "definition-1"
    assert circleci["oidc.circleci.com/context-ids"] == ["context-1"]
    kubernetes = kubernetes_claims()
    assert kubernetes["sub"] == "system:serviceaccount:ci:publisher"
    assert kubernetes["kubernetes.io"]["serviceaccount"]["name"] == "publisher"
