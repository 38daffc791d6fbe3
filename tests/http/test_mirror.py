"""The caching mirror over HTTP against the fake upstream, on every backend."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import MIRROR, STORE
from storage.base import NotFound
from tests.support.fake_upstream import FakeUpstream
from tests.support.fake_upstream_docs import MAINTAINER

from .conftest import MakeClient
from .packages import publish, publish_body
from .users import add_user, bearer


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        fake.add_package("lodash", ["4.17.20", "4.17.21"])
        fake.add_package("@types/node", ["20.0.0"])
        yield fake


def mirror_config(upstream: FakeUpstream, **uplink: Any) -> dict[str, Any]:
    return {
        "uplinks": {"up": {"url": upstream.url, "timeout": "5s", **uplink}},
        "packages": {
            "@private/*": {"access": "$all", "publish": "$authenticated"},
            "**": {"access": "$all", "publish": "$authenticated", "proxy": "up"},
        },
    }


@pytest.fixture
async def client(make_client: MakeClient, upstream: FakeUpstream) -> TestClient:
    return await make_client(**mirror_config(upstream))


async def get_tarball(client: TestClient, path: str) -> tuple[int, bytes | None]:
    response = await client.get(path)
    try:
        return response.status, await response.read()
    except aiohttp.ClientPayloadError:
        return response.status, None


async def test_upstream_package_is_served_with_tarball_urls_on_this_registry(
    client: TestClient, upstream: FakeUpstream
) -> None:
    response = await client.get("/lodash")
    assert response.status == 200
    doc = await response.json()
    assert set(doc["versions"]) == {"4.17.20", "4.17.21"}
    tarball = doc["versions"]["4.17.21"]["dist"]["tarball"]
    assert tarball == f"http://{client.host}:{client.port}/lodash/-/lodash-4.17.21.tgz"
    assert "_tarhold" not in doc
    scoped = await (await client.get("/@types%2fnode")).json()
    assert scoped["versions"]["20.0.0"]["dist"]["tarball"].endswith("/@types/node/-/node-20.0.0.tgz")


async def test_tarball_is_mirrored_then_served_with_the_upstream_stopped(
    client: TestClient, upstream: FakeUpstream
) -> None:
    status, body = await get_tarball(client, "/lodash/-/lodash-4.17.21.tgz")
    assert status == 200 and body == upstream.tarball_bytes("lodash", "4.17.21")
    await upstream.stop()
    status, body = await get_tarball(client, "/lodash/-/lodash-4.17.21.tgz")
    assert status == 200 and body == upstream.tarball_bytes("lodash", "4.17.21")
    # the packument too: a stale copy beats an error
    response = await client.get("/lodash")
    assert response.status == 200


async def test_stale_copy_is_served_when_the_upstream_fails(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**mirror_config(upstream, maxage="0s"))
    assert (await client.get("/lodash")).status == 200
    upstream.fail("lodash", 500)
    response = await client.get("/lodash")
    assert response.status == 200
    assert set((await response.json())["versions"]) == {"4.17.20", "4.17.21"}
    assert client.app[MIRROR].stats.counts["up:stale"] >= 1


async def test_without_a_copy_404_upstream_is_404_and_failure_is_502(client: TestClient, upstream: FakeUpstream) -> None:
    response = await client.get("/no-such-package")
    assert response.status == 404
    # The 404 says which uplink was asked; a name no rule proxies says that none was.
    assert (await response.json())["error"] == (
        "package no-such-package not found: not published here, and uplink up has no such package"
    )
    response = await client.get("/@private%2fnone")
    assert (await response.json())["error"] == (
        "package @private/none not found: not published here, and no uplink is configured for this name"
    )
    upstream.add_package("broken", ["1.0.0"])
    upstream.fail("broken", 500)
    response = await client.get("/broken")
    assert response.status == 502
    assert "broken" in (await response.json())["error"]


async def test_circuit_opens_after_max_fails_and_closes_after_fail_timeout(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**mirror_config(upstream, max_fails=2, fail_timeout="1s"))
    for name in ("a1", "a2", "a3"):
        upstream.add_package(name, ["1.0.0"])
        upstream.fail(name, 500)
    assert (await client.get("/a1")).status == 502
    assert (await client.get("/a2")).status == 502
    before = len(upstream.requests)
    response = await client.get("/a3")
    assert response.status == 503  # skipped, not waited on
    assert len(upstream.requests) == before
    upstream.clear_faults()
    await asyncio.sleep(1.1)
    assert (await client.get("/a3")).status == 200  # the probe goes through and closes it


async def test_maxage_revalidation_sends_the_etag_and_accepts_304(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**mirror_config(upstream, maxage="0s"))
    assert (await client.get("/lodash")).status == 200
    assert (await client.get("/lodash")).status == 200
    revalidations = [r for r in upstream.requests if r.path == "/lodash" and r.headers.get("If-None-Match")]
    assert revalidations, "the second request should revalidate with If-None-Match"
    assert client.app[MIRROR].stats.counts["up:revalidated"] >= 1


async def test_fresh_copy_is_served_without_asking_the_upstream(client: TestClient, upstream: FakeUpstream) -> None:
    for _ in range(5):
        assert (await client.get("/lodash")).status == 200
    assert upstream.count("lodash") == 1


async def test_fifty_concurrent_requests_for_one_uncached_tarball_make_one_upstream_request(
    client: TestClient, upstream: FakeUpstream
) -> None:
    upstream.slow_tarball("lodash", "4.17.21", chunk=512, delay=0.01)
    results = await asyncio.gather(*(get_tarball(client, "/lodash/-/lodash-4.17.21.tgz") for _ in range(50)))
    expected = upstream.tarball_bytes("lodash", "4.17.21")
    assert all(status == 200 and body == expected for status, body in results)
    assert upstream.tarball_count("lodash", "4.17.21") == 1
    assert upstream.count("lodash") == 1


async def test_concurrent_packument_requests_cause_one_upstream_fetch(
    client: TestClient, upstream: FakeUpstream
) -> None:
    upstream.stall("lodash", 0.3)
    responses = await asyncio.gather(*(client.get("/lodash") for _ in range(20)))
    assert all(r.status == 200 for r in responses)
    assert upstream.count("lodash") == 1


async def test_corrupt_tarball_is_never_stored_and_the_client_sees_an_error(
    client: TestClient, upstream: FakeUpstream
) -> None:
    upstream.corrupt_tarball("lodash", "4.17.20")
    status, body = await get_tarball(client, "/lodash/-/lodash-4.17.20.tgz")
    assert body is None or status != 200, "a corrupt body must never arrive complete"
    upstream.clear_faults()
    await upstream.stop()
    with pytest.raises(NotFound):  # nothing was stored
        await client.app[STORE].stat_tarball("lodash", "lodash-4.17.20.tgz")
    status, _ = await get_tarball(client, "/lodash/-/lodash-4.17.20.tgz")
    assert status == 502  # not in storage, so it goes to the uplink, which is gone


async def test_a_deliberate_cut_off_is_one_warning_not_a_crash(
    client: TestClient, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.corrupt_tarball("lodash", "4.17.20")
    with caplog.at_level(logging.DEBUG):
        status, body = await get_tarball(client, "/lodash/-/lodash-4.17.20.tgz")
        await asyncio.sleep(0.1)  # the server finishes the request after the cut
    assert body is None or status != 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "lodash/lodash-4.17.20.tgz" in warnings[0] and "integrity" in warnings[0]


async def test_truncated_tarball_is_not_stored_and_is_cut_off(client: TestClient, upstream: FakeUpstream) -> None:
    upstream.drop_mid_tarball("lodash", "4.17.20", after_bytes=100)
    status, body = await get_tarball(client, "/lodash/-/lodash-4.17.20.tgz")
    assert body is None or status != 200
    upstream.clear_faults()
    status, body = await get_tarball(client, "/lodash/-/lodash-4.17.20.tgz")
    assert status == 200 and body == upstream.tarball_bytes("lodash", "4.17.20")


async def test_tarball_without_content_length_is_streamed_and_stored(
    client: TestClient, upstream: FakeUpstream
) -> None:
    upstream.no_content_length("lodash", "4.17.20")
    status, body = await get_tarball(client, "/lodash/-/lodash-4.17.20.tgz")
    assert status == 200 and body == upstream.tarball_bytes("lodash", "4.17.20")
    await upstream.stop()
    status, body = await get_tarball(client, "/lodash/-/lodash-4.17.20.tgz")
    assert status == 200 and body == upstream.tarball_bytes("lodash", "4.17.20")


async def test_client_that_goes_away_does_not_stop_the_mirror(client: TestClient, upstream: FakeUpstream) -> None:
    upstream.slow_tarball("lodash", "4.17.21", chunk=256, delay=0.01)
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"http://{client.host}:{client.port}/lodash/-/lodash-4.17.21.tgz")
        await response.content.read(10)
        response.close()  # hang up mid-stream
    deadline = time.monotonic() + 10
    mirror = client.app[MIRROR]
    while time.monotonic() < deadline and mirror._downloads:
        await asyncio.sleep(0.05)
    upstream.clear_faults()
    await upstream.stop()
    status, body = await get_tarball(client, "/lodash/-/lodash-4.17.21.tgz")
    assert status == 200 and body == upstream.tarball_bytes("lodash", "4.17.21")


async def test_a_local_package_is_never_merged_with_or_fetched_from_upstream(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**mirror_config(upstream))
    token = await add_user(client, "alice")
    assert await publish(client, token, "internal-tool", "1.0.0") == 201
    upstream.reset_counts()  # (the publish asked whether the upstream serves the name: no)
    upstream.add_package("internal-tool", ["1.0.0", "99.0.0"])  # a dependency-confusion attempt
    doc = await (await client.get("/internal-tool")).json()
    assert list(doc["versions"]) == ["1.0.0"] and doc["dist-tags"]["latest"] == "1.0.0"
    assert (await client.get("/internal-tool/-/internal-tool-99.0.0.tgz")).status == 404
    assert upstream.count("internal-tool") == 0


async def test_publishing_a_name_the_upstream_serves_is_refused_unless_allowed(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**mirror_config(upstream))
    token = await add_user(client, "alice")
    assert await publish(client, token, "lodash", "5.0.0") == 403
    config = mirror_config(upstream)
    config["packages"]["**"]["publish_over_uplink"] = True
    allowed = await make_client(**config)
    assert await publish(allowed, token, "lodash", "5.0.0") == 201
    doc = await (await allowed.get("/lodash")).json()
    assert list(doc["versions"]) == ["5.0.0"]  # never merged with the upstream's


async def test_a_new_name_is_not_published_while_the_uplinks_cannot_be_asked(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**mirror_config(upstream))
    token = await add_user(client, "alice")
    assert await publish(client, token, "ours", "1.0.0") == 201  # a name of ours, known here
    await upstream.stop()
    response = await client.put("/never-seen", json=publish_body("never-seen", "1.0.0"), headers=bearer(token))
    assert response.status == 503
    assert "publish_if_uplinks_unreachable" in (await response.json())["error"]
    with pytest.raises(NotFound):  # nothing stored
        await client.app[STORE].read_packument("never-seen")
    assert await publish(client, token, "ours", "1.1.0") == 201  # local names are not asked about
    config = mirror_config(upstream)
    config["packages"]["**"]["publish_if_uplinks_unreachable"] = True
    air_gapped = await make_client(**config)
    assert await publish(air_gapped, token, "never-seen", "1.0.0") == 201


async def test_via_is_sent_upstream_and_a_loop_is_not_followed(client: TestClient, upstream: FakeUpstream) -> None:
    assert (await client.get("/lodash")).status == 200
    via = upstream.requests[-1].headers.get("Via", "")
    assert "tarhold-" in via
    upstream.add_package("looped", ["1.0.0"])
    response = await client.get("/looped", headers={"Via": via})
    assert response.status == 404
    assert upstream.count("looped") == 0


async def test_private_uplink_gets_its_auth_header_under_a_path_prefix(make_client: MakeClient) -> None:
    async with FakeUpstream(prefix="/artifactory/api/npm/npm-remote") as fake:
        fake.add_package("secret-lib", ["1.0.0"])
        fake.require_auth("Bearer up-token")
        config = mirror_config(fake, auth={"type": "bearer", "token": "up-token"})
        client = await make_client(**config)
        assert (await client.get("/secret-lib")).status == 200
        status, body = await get_tarball(client, "/secret-lib/-/secret-lib-1.0.0.tgz")
        assert status == 200 and body == fake.tarball_bytes("secret-lib", "1.0.0")
        assert all(r.headers.get("Authorization") == "Bearer up-token" for r in fake.requests)


async def test_a_stalled_upstream_times_out_instead_of_hanging(make_client: MakeClient, upstream: FakeUpstream) -> None:
    client = await make_client(**mirror_config(upstream, timeout="1s"))
    upstream.add_package("slow", ["1.0.0"])
    upstream.stall("slow", 5)
    started = time.monotonic()
    response = await client.get("/slow")
    assert response.status == 502
    assert time.monotonic() - started < 4


async def test_large_upstream_document_is_served(client: TestClient, upstream: FakeUpstream) -> None:
    upstream.add_large_packument("huge", versions=3000)
    response = await client.get("/huge", headers={"Accept": "application/vnd.npm.install-v1+json"})
    assert response.status == 200
    assert len((await response.json())["versions"]) == 3000


async def test_audit_is_passed_to_the_uplink_for_public_packages(client: TestClient, upstream: FakeUpstream) -> None:
    body = {"vulnerable-pkg": ["1.0.0"], "lodash": ["4.17.21"]}
    response = await client.post("/-/npm/v1/security/advisories/bulk", json=body)
    assert response.status == 200
    assert any(r.path.endswith("/-/npm/v1/security/advisories/bulk") for r in upstream.requests)
    upstream.disable_audit()
    response = await client.post("/-/npm/v1/security/audits/quick", json={})
    assert response.status == 404
    assert "does not support npm audit" in (await response.json())["error"]


async def test_audit_without_a_public_uplink_is_a_clear_error(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post("/-/npm/v1/security/advisories/bulk", json={})
    assert response.status == 404
    assert "uplink" in (await response.json())["error"]


async def test_search_lists_local_results_first_then_the_uplinks(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**mirror_config(upstream))
    token = await add_user(client, "alice")
    upstream.add_package("lodash-extra", ["1.0.0"])
    assert await publish(client, token, "@private/lodash-helpers", "1.0.0") == 201
    body = await (await client.get("/-/v1/search", params={"text": "lodash", "size": "10"})).json()
    names = [o["package"]["name"] for o in body["objects"]]
    assert names[0] == "@private/lodash-helpers"
    assert "lodash" in names[1:] and "lodash-extra" in names[1:]


async def test_a_mirrored_package_cannot_be_changed_here_even_by_a_namesake_maintainer(
    client: TestClient, upstream: FakeUpstream
) -> None:
    token = await add_user(client, MAINTAINER["name"])
    doc = await (await client.get("/lodash?write=true", headers={"Authorization": f"Bearer {token}"})).json()
    auth = {"Authorization": f"Bearer {token}"}
    doc["versions"]["4.17.20"]["deprecated"] = "hijacked"
    response = await client.put(f"/lodash/-rev/{doc['_rev']}", json=doc, headers=auth)
    assert response.status == 403
    response = await client.put("/-/package/lodash/dist-tags/evil", json="4.17.20", headers=auth)
    assert response.status == 403
    response = await client.delete(f"/lodash/-rev/{doc['_rev']}", headers=auth)
    assert response.status == 403
    response = await client.delete(f"/lodash/-/lodash-4.17.20.tgz/-rev/{doc['_rev']}", headers=auth)
    assert response.status == 403
    fresh = await (await client.get("/lodash")).json()
    assert "deprecated" not in fresh["versions"]["4.17.20"] and "evil" not in fresh["dist-tags"]
