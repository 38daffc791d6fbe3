"""The mirror policy over HTTP against the fake upstream, on every backend: each path a client can take."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import PACKAGES
from tests.support.fake_upstream import FakeUpstream

from .conftest import MakeClient
from .packages import publish
from .users import add_user, basic, bearer

ADMIN_PASSWORD = "operator chose this"
ADMIN = basic("admin", ADMIN_PASSWORD)
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
ABBREVIATED = {"Accept": "application/vnd.npm.install-v1+json"}


def add_policy_packages(fake: FakeUpstream) -> None:
    """4.17.20 is old; 4.17.21 (latest) came out an hour ago; 5.0.0-beta.1 five days ago."""
    fake.add_package("lodash", ["4.17.20", "4.17.21", "5.0.0-beta.1"], latest="4.17.21")
    fake.set_published("lodash", "4.17.20", NOW - timedelta(days=400))
    fake.set_published("lodash", "4.17.21", NOW - timedelta(hours=1))
    fake.set_published("lodash", "5.0.0-beta.1", NOW - timedelta(days=5))
    fake.add_package("chalk", ["5.0.0", "5.0.1"])


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        add_policy_packages(fake)
        yield fake


async def client_with_admin(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, upstream: FakeUpstream, policy: Any
) -> TestClient:
    """An app with the fake upstream, `policy`, and the admin `admin` (ADMIN) from the environment."""
    monkeypatch.setenv("TARHOLD_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.delenv("TARHOLD_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("TARHOLD_ADMIN_USER", raising=False)
    return await make_client(**policy_config(upstream, policy))


def policy_config(upstream: FakeUpstream, policy: Any = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "uplinks": {"up": {"url": upstream.url, "timeout": "5s"}},
        "packages": {
            "@private/*": {"access": "$all", "publish": "$authenticated"},
            "**": {"access": "$all", "publish": "$authenticated", "proxy": "up"},
        },
        **extra,
    }
    if policy is not None:
        config["policy"] = policy
    return config


@pytest.fixture
async def client(
    make_client: MakeClient, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> TestClient:
    return await client_with_admin(make_client, monkeypatch, upstream, {"**": {"min_age": "3d"}})


def set_clock(client: TestClient, moment: datetime) -> None:
    client.app[PACKAGES].policy.clock = lambda: moment


async def error_of(client: TestClient, path: str) -> tuple[int, str]:
    response = await client.get(path)
    body = await response.json()
    return response.status, body.get("error", "")


async def test_quarantine_hides_young_versions_from_every_path(client: TestClient) -> None:
    response = await client.get("/lodash")
    assert response.status == 200
    doc = await response.json()
    assert set(doc["versions"]) == {"4.17.20", "5.0.0-beta.1"}
    assert doc["dist-tags"] == {"latest": "4.17.20"}
    assert "4.17.21" not in doc["time"] and {"created", "modified"} <= set(doc["time"])
    abbreviated = await (await client.get("/lodash", headers=ABBREVIATED)).json()
    assert set(abbreviated["versions"]) == {"4.17.20", "5.0.0-beta.1"}
    assert abbreviated["dist-tags"] == {"latest": "4.17.20"}

    clears = (NOW - timedelta(hours=1) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%MZ")
    for path in ("/lodash/4.17.21", "/lodash/-/lodash-4.17.21.tgz"):
        status, message = await error_of(client, path)
        assert status == 403, path
        assert message == f"lodash@4.17.21 is quarantined until {clears} by policy min_age=3d"
    assert (await client.get("/lodash/latest")).status == 200
    assert (await (await client.get("/lodash/latest")).json())["version"] == "4.17.20"
    assert (await client.get("/lodash/-/lodash-4.17.20.tgz")).status == 200


async def test_a_version_leaving_quarantine_appears_with_a_new_etag_and_no_upstream_change(
    client: TestClient, upstream: FakeUpstream
) -> None:
    first = await client.get("/lodash")
    etag = first.headers["ETag"]
    assert (await client.get("/lodash", headers={"If-None-Match": etag})).status == 304
    fetched = upstream.count("lodash")
    set_clock(client, NOW + timedelta(days=3))
    later = await client.get("/lodash", headers={"If-None-Match": etag})
    assert later.status == 200 and later.headers["ETag"] != etag
    doc = await later.json()
    assert "4.17.21" in doc["versions"] and doc["dist-tags"]["latest"] == "4.17.21"
    assert upstream.count("lodash") == fetched
    assert (await client.get("/lodash/-/lodash-4.17.21.tgz")).status == 200


async def test_an_admin_block_applies_at_once_to_a_mirrored_tarball_and_is_lifted(
    client: TestClient, upstream: FakeUpstream
) -> None:
    assert (await client.get("/chalk/-/chalk-5.0.1.tgz")).status == 200  # mirrored now
    response = await client.post("/-/tarhold/policy", headers=ADMIN, json={
        "kind": "block", "package": "chalk", "versions": ">=5.0.1", "reason": "GHSA-test: compromised release",
    })
    assert response.status == 201, await response.text()
    rule = await response.json()
    status, message = await error_of(client, "/chalk/-/chalk-5.0.1.tgz")
    assert status == 403
    assert message == f"chalk@5.0.1 is blocked by rule {rule['id']} (GHSA-test: compromised release)"
    doc = await (await client.get("/chalk")).json()
    assert set(doc["versions"]) == {"5.0.0"} and doc["dist-tags"]["latest"] == "5.0.0"
    listed = await (await client.get("/-/tarhold/policy", headers=ADMIN)).json()
    assert [r["id"] for r in listed["rules"]] == [rule["id"]] and listed["rules"][0]["by"] == "admin"

    assert (await client.delete(f"/-/tarhold/policy/{rule['id']}", headers=ADMIN)).status == 200
    assert (await client.get("/chalk/-/chalk-5.0.1.tgz")).status == 200
    assert (await client.delete(f"/-/tarhold/policy/{rule['id']}", headers=ADMIN)).status == 404


async def test_the_policy_api_is_for_admins_and_refuses_bad_rules(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    body = {"kind": "block", "package": "chalk"}
    assert (await client.post("/-/tarhold/policy", json=body)).status == 401
    assert (await client.post("/-/tarhold/policy", json=body, headers=bearer(alice))).status == 403
    for bad, words in (
        ({"kind": "block", "package": "chalk", "versions": ">=>1"}, "semver range"),
        ({"kind": "deny", "package": "chalk"}, "kind"),
        ({"kind": "block"}, "package or a scope"),
        ({"kind": "block", "package": "chalk", "expires": "2001-01-01"}, "past"),
        ({"kind": "block", "package": "chalk", "colour": "red"}, "colour"),
    ):
        response = await client.post("/-/tarhold/policy", json=bad, headers=ADMIN)
        assert response.status == 400, bad
        assert words in (await response.json())["error"], bad


async def test_local_publishes_are_exempt_from_ages_but_not_from_an_admin_block(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    assert await publish(client, alice, "@private/app", "1.0.0") == 201
    assert await publish(client, alice, "@private/app", "1.0.1") == 201
    doc = await (await client.get("/@private%2fapp")).json()
    assert set(doc["versions"]) == {"1.0.0", "1.0.1"}  # young, but published here
    response = await client.post("/-/tarhold/policy", headers=ADMIN, json={
        "kind": "block", "package": "@private/app", "versions": "1.0.1", "reason": "stolen CI token",
    })
    assert response.status == 201
    doc = await (await client.get("/@private%2fapp")).json()
    assert set(doc["versions"]) == {"1.0.0"} and doc["dist-tags"]["latest"] == "1.0.0"
    status, message = await error_of(client, "/@private/app/-/app-1.0.1.tgz")
    assert status == 403 and "stolen CI token" in message
    # The publisher's write view (npm deprecate / dist-tag / unpublish) keeps every version.
    whole = await (await client.get("/@private%2fapp?write=true", headers=bearer(alice))).json()
    assert set(whole["versions"]) == {"1.0.0", "1.0.1"}
    anonymous = await (await client.get("/@private%2fapp?write=true")).json()
    assert set(anonymous["versions"]) == {"1.0.0"}


async def test_refusals_are_counted_by_reason_in_the_metrics(client: TestClient) -> None:
    assert (await client.get("/lodash/-/lodash-4.17.21.tgz")).status == 403
    await client.get("/lodash")
    text = await (await client.get("/-/metrics")).text()
    lines = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith("tarhold_policy")}
    assert lines['tarhold_policy_refused_total{reason="quarantine"}'] >= 1
    assert lines['tarhold_policy_hidden_versions{reason="quarantine"}'] >= 1


async def test_verdaccio_filter_config_works_unchanged(make_client: MakeClient, upstream: FakeUpstream) -> None:
    client = await make_client(**policy_config(upstream, filters={
        "@verdaccio/package-filter": {"minAgeDays": 1, "block": [{"package": "chalk", "versions": "5.0.1"}]},
    }))
    doc = await (await client.get("/lodash")).json()
    assert set(doc["versions"]) == {"4.17.20", "5.0.0-beta.1"}
    chalk = await (await client.get("/chalk")).json()
    assert set(chalk["versions"]) == {"5.0.0"}
    status, message = await error_of(client, "/chalk/5.0.1")
    assert status == 403 and "blocked by rule filters.@verdaccio/package-filter.block[0]" in message


async def test_replace_serves_the_older_release_under_the_blocked_number(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**policy_config(upstream, {
        "**": {"block": [{"package": "chalk", "versions": "5.0.1", "strategy": "replace", "reason": "bad build"}]},
    }))
    manifest = await (await client.get("/chalk/5.0.1")).json()
    assert manifest["version"] == "5.0.1" and manifest["dist"]["tarball"].endswith("/chalk-5.0.0.tgz")
    status, message = await error_of(client, "/chalk/-/chalk-5.0.1.tgz")
    assert status == 403 and "bad build" in message
    assert (await client.get("/chalk/-/chalk-5.0.0.tgz")).status == 200


async def test_the_dist_tags_endpoint_shows_the_re_pointed_tags(client: TestClient) -> None:
    await client.get("/lodash")  # mirrored now
    tags = await (await client.get("/-/package/lodash/dist-tags")).json()
    assert tags == {"latest": "4.17.20"}


async def test_the_write_view_of_a_mirrored_package_stays_filtered(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    doc = await (await client.get("/lodash?write=true", headers=bearer(alice))).json()
    assert "4.17.21" not in doc["versions"]
