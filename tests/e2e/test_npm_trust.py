"""Trusted publishing with the real npm CLI: `npm trust` against tarhold, and `npm publish` in a
(fake) GitHub Actions job with no npm token at all.

The job's id token comes from a fake OIDC issuer (tests/support/fake_oidc.py)
the way GitHub Actions hands it out: npm sees `GITHUB_ACTIONS=true` and asks
`ACTIONS_ID_TOKEN_REQUEST_URL` for a token with audience `npm:127.0.0.1`
(lib/utils/oidc.js), or takes `NPM_ID_TOKEN` when it is set, exchanges it at
`/-/npm/v1/oidc/token/exchange/package/{name}` and publishes with what it
gets. When the exchange is refused npm goes on without a token, and the
publish fails for want of one.

The issuer runs in the test's event loop, which tarhold (its JWKS) and npm
(its /token) both call, so npm runs in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fixtures import (
    CLIENT_TIMEOUT,
    NewNpm,
    Npm,
    Result,
    TarholdServer,
    embedded_tarhold,
    http_json,
    run_client,
    unique_name,
    write_package,
)
from tests.support.fake_oidc import FakeIssuer, github_claims, kubernetes_claims

pytestmark = pytest.mark.npm

AUDIENCE = "npm:127.0.0.1"
K8S_ISSUER = "http://127.0.0.1:9/k8s"  # only ever the tokens' iss: nothing is fetched from it


@pytest.fixture
async def issuer() -> AsyncIterator[FakeIssuer]:
    async with FakeIssuer() as fake:
        yield fake


@pytest.fixture
def server(tmp_path: Path, issuer: FakeIssuer) -> Iterator[TarholdServer]:
    config = {"trusted_publishing": {"issuers": [
        {"type": "github", "issuer": issuer.url},
        {"name": "k8s", "type": "generic", "issuer": K8S_ISSUER, "jwks_uri": issuer.jwks_uri},
    ]}}
    with embedded_tarhold(tmp_path / "tarhold", config=config) as running:
        yield running


def ci_npm(maintainer: Npm, issuer: FakeIssuer | None, **env: str) -> Npm:
    """npm in a CI job with no npm token: GitHub Actions' id-token environment (`issuer`), and `env`."""
    home = maintainer.home.parent / f"ci-{len(list(maintainer.home.parent.iterdir()))}"
    home.mkdir()
    (home / ".npmrc").write_text("")
    ci = issuer.github_actions_env() if issuer is not None else {}
    return Npm(maintainer.registry, home, env={**maintainer.env, "HOME": str(home), **ci, **env})


def trust(npm: Npm, *args: str) -> Result:
    """`npm trust ARGS`, which must succeed: its subcommands take only their own flags, so npm's
    user config and cache come from the environment instead of Npm.argv's flags."""
    env = {**npm.env, "npm_config_userconfig": str(npm.userconfig), "npm_config_cache": str(npm.cache)}
    result = run_client(["npm", "trust", *args, "--registry", npm.registry], cwd=npm.home, env=env,
                        timeout=CLIENT_TIMEOUT)
    assert result.returncode == 0, result.explain()
    return result


async def publish_from_ci(job: Npm, package: str, version: str) -> Any:
    directory = write_package(job.workdir(f"{package}-{version}"), package, version)
    return await asyncio.to_thread(job.run, "publish", cwd=directory)


async def test_npm_trust_adds_lists_and_revokes_a_github_configuration(
    server: TarholdServer, new_npm: NewNpm
) -> None:
    alice = new_npm(server, "alice")
    package = unique_name("widget")
    alice.publish(write_package(alice.workdir("v1"), package, "1.0.0"))
    added = await asyncio.to_thread(
        trust, alice, "github", package, "--repository", "acme/widget", "--file", "publish.yml", "--allow-publish",
        "--yes",
    )
    assert "Trust configuration created successfully" in added.output, added.explain()
    listed = await asyncio.to_thread(trust, alice, "list", package, "--json")
    (config,) = [line for line in listed.stdout.split("\n") if '"id"' in line]
    config_id = config.split('"')[3]
    assert "acme/widget" in listed.stdout and "publish.yml" in listed.stdout, listed.explain()
    await asyncio.to_thread(trust, alice, "revoke", package, "--id", config_id)
    listed = await asyncio.to_thread(trust, alice, "list", package)
    assert "No trust configurations found" in listed.output, listed.explain()


async def test_a_trusted_github_job_publishes_without_a_token_and_others_cannot(
    server: TarholdServer, new_npm: NewNpm, issuer: FakeIssuer
) -> None:
    alice = new_npm(server, "alice")
    package, untrusted = unique_name("widget"), unique_name("gadget")
    for name in (package, untrusted):
        alice.publish(write_package(alice.workdir(name), name, "1.0.0"))
    await asyncio.to_thread(
        trust, alice, "github", package, "--repository", "acme/widget", "--file", "publish.yml", "--allow-publish",
        "--yes",
    )
    result = await publish_from_ci(ci_npm(alice, issuer), package, "1.1.0")
    assert result.returncode == 0, result.explain() + server.log()[-3000:]
    assert issuer.token_audiences[-1] == AUDIENCE
    manifest = server.packument(package)["versions"]["1.1.0"]
    assert manifest["_npmUser"]["trustedPublisher"]["id"] == "github"

    job = {**github_claims(), "aud": AUDIENCE}
    refused = {
        "another repository": {"token": None, "claims": github_claims(repository="mallory/widget")},
        "an expired token": {"token": issuer.token(job, lifetime=-600)},
        "a wrong audience": {"token": issuer.token({**job, "aud": "npm:registry.example.com"})},
        "an unknown issuer": {"token": issuer.token({**job, "iss": "http://127.0.0.1:9/other"})},
        "a key not in the JWKS": {"token": issuer.token(job, key=issuer.stranger_key())},
    }
    for number, (why, case) in enumerate(refused.items()):
        issuer.github_job = case.get("claims") or github_claims()
        env = {"NPM_ID_TOKEN": case["token"]} if case["token"] else {}
        result = await publish_from_ci(ci_npm(alice, issuer, **env), package, f"1.2.{number}")
        assert result.returncode != 0, f"{why}:\n{result.explain()}"
        assert "ENEEDAUTH" in result.output or "E401" in result.output, f"{why}:\n{result.explain()}"
    issuer.github_job = github_claims()
    result = await publish_from_ci(ci_npm(alice, issuer), untrusted, "1.1.0")  # no trust configuration
    assert result.returncode != 0, result.explain()
    assert set(server.packument(package)["versions"]) == {"1.0.0", "1.1.0"}
    log = server.log()
    for check in ("has expired", "audience", "not a configured trusted publishing issuer", "has no key",
                  "no trusted publisher configuration"):
        assert check in log, check


async def test_a_kubernetes_service_account_publishes_through_a_generic_issuer(
    server: TarholdServer, new_npm: NewNpm, issuer: FakeIssuer
) -> None:
    """As the README says: npm run as in GitLab CI, with the projected token as NPM_ID_TOKEN."""
    alice = new_npm(server, "alice")
    package = unique_name("widget")
    alice.publish(write_package(alice.workdir(package), package, "1.0.0"))
    trust = [{"type": "k8s", "claims": {"sub": "system:serviceaccount:ci:publisher"}, "permissions": ["createPackage"]}]
    status, body = http_json("POST", f"{server.url}-/package/{package}/trust", trust, token=alice.token)
    assert status == 200, body
    for account, version, works in (("intruder", "1.1.0", False), ("publisher", "1.2.0", True)):
        token = issuer.token({**kubernetes_claims(service_account=account), "iss": K8S_ISSUER, "aud": AUDIENCE})
        job = ci_npm(alice, None, GITLAB_CI="true", NPM_ID_TOKEN=token)
        result = await publish_from_ci(job, package, version)
        assert (result.returncode == 0) is works, result.explain()
    assert set(server.packument(package)["versions"]) == {"1.0.0", "1.2.0"}
