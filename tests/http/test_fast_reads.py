"""Replayed anonymous reads (registry.http.fast_reads), on every backend: the same
answer as the app's, counted like it, and never once what it depends on changed."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from registry.domain.org_store import create_org
from registry.http.appkeys import DATABASE, PACKAGES
from registry.http.fast_reads import FAST_READS, FastReads
from registry.http.org_directory import reload

from .conftest import MakeClient
from .packages import make_tarball, path_of, publish, publish_body
from .test_metrics import delta, scrape
from .users import add_user, bearer

ABBREVIATED = {"Accept": "application/vnd.npm.install-v1+json", "Accept-Encoding": "gzip"}
TARBALL = "/fr/-/fr-1.0.0.tgz"
# What the app sets and a replay must repeat; X-Request-Id and Date differ per response.
SAME_HEADERS = ("ETag", "Cache-Control", "Content-Type", "Content-Encoding", "Vary", "Server")
# Install fields enough that the abbreviated document is gzipped too.
DEPENDENCIES = {f"dependency-{i}": f"^{i}.0.0" for i in range(60)}


def fast_reads(client: TestClient) -> FastReads:
    return client.server.app[FAST_READS]


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    # A long TTL: an entry must not lapse between two requests of a test.
    return await make_client(cache={"packument_ttl": "5m"})


@pytest.fixture
async def alice(client: TestClient) -> str:
    token = await add_user(client, "alice")
    assert await publish(client, token, "fr", "1.0.0", dependencies=DEPENDENCIES) == 201
    return token


async def test_a_second_anonymous_read_is_replayed_with_the_apps_bytes_headers_and_metrics(
    client: TestClient, alice: str
) -> None:
    fast = fast_reads(client)
    before = await scrape(client)
    for path, headers in ((TARBALL, {}), ("/fr", ABBREVIATED), ("/fr", {})):
        first = await client.get(path, headers=headers)
        hits = fast.hits
        second = await client.get(path, headers={**headers, "X-Request-Id": "replayed-1"})
        assert fast.hits == hits + 1, path
        assert (first.status, second.status) == (200, 200)
        assert await second.read() == await first.read()
        assert {h: second.headers.get(h) for h in SAME_HEADERS} == {h: first.headers.get(h) for h in SAME_HEADERS}
        assert second.headers["Server"] == "tarhold" and second.headers["X-Request-Id"] == "replayed-1"
    assert (await client.get("/fr", headers=ABBREVIATED)).headers["Content-Encoding"] == "gzip"
    after = await scrape(client)
    assert delta(before, after, "tarhold_http_requests_total", route="tarball", method="GET", status="200") == 2
    assert delta(before, after, "tarhold_http_requests_total", route="packument", method="GET", status="200") == 5


async def test_tokens_heads_queries_and_other_variants_are_the_apps(client: TestClient, alice: str) -> None:
    fast = fast_reads(client)
    for _ in range(2):
        assert (await client.get(TARBALL)).status == 200
    hits = fast.hits
    assert (await client.get(TARBALL, headers=bearer(alice))).status == 200
    assert (await client.head(TARBALL)).status == 200
    assert (await client.get(TARBALL + "?x=1")).status == 200
    assert (await client.get(TARBALL, headers={"Range": "bytes=0-9"})).status in (200, 206)
    assert (await client.get(TARBALL, headers={"Accept": "application/octet-stream"})).status == 200
    assert fast.hits == hits
    # A bad token is refused, not replayed as anonymous.
    assert (await client.get(TARBALL, headers={"Authorization": "Bearer nonsense"})).status == 401


async def test_if_none_match_gets_the_apps_304_or_its_200(client: TestClient, alice: str) -> None:
    fast = fast_reads(client)
    etag = (await client.get(TARBALL)).headers["ETag"]
    hits = fast.hits
    not_modified = await client.get(TARBALL, headers={"If-None-Match": etag})
    assert not_modified.status == 304 and fast.hits == hits + 1
    assert not_modified.headers["ETag"] == etag and "Content-Type" not in not_modified.headers
    other = await client.get(TARBALL, headers={"If-None-Match": '"something-else"'})
    assert other.status == 200 and fast.hits == hits + 1  # the app answered
    assert await other.read() == make_tarball("fr", "1.0.0", dependencies=DEPENDENCIES)


async def test_a_change_made_here_is_served_by_the_next_read(client: TestClient, alice: str) -> None:
    for _ in range(2):
        assert set((await (await client.get("/fr")).json())["versions"]) == {"1.0.0"}
        assert (await client.get(TARBALL)).status == 200
    assert await publish(client, alice, "fr", "1.1.0") == 201
    assert set((await (await client.get("/fr")).json())["versions"]) == {"1.0.0", "1.1.0"}
    doc = await (await client.get("/fr?write=true", headers=bearer(alice))).json()
    response = await client.delete(f"/fr/-rev/{doc['_rev']}", headers=bearer(alice))
    assert response.status == 200, await response.text()
    assert (await client.get(TARBALL)).status == 404
    assert (await client.get("/fr")).status == 404


async def test_a_new_policy_generation_sends_reads_to_the_app_again(client: TestClient, alice: str) -> None:
    fast = fast_reads(client)
    for _ in range(2):
        assert (await client.get(TARBALL)).status == 200
        assert (await client.get("/fr")).status == 200
    hits = fast.hits
    client.server.app[PACKAGES].policy.set_rules([])  # what a rule added or lifted anywhere does
    assert (await client.get(TARBALL)).status == 200
    assert (await client.get("/fr")).status == 200
    assert fast.hits == hits
    assert (await client.get(TARBALL)).status == 200
    assert fast.hits == hits + 1  # remembered again


async def test_an_org_package_made_private_is_no_longer_replayed_to_anonymous(client: TestClient) -> None:
    olga = await add_user(client, "olga")
    await create_org(client.server.app[DATABASE], "acme", "olga")
    await reload(client.server.app)
    name, tarball = "@acme/ui", "/@acme/ui/-/ui-1.0.0.tgz"
    assert (await client.put(path_of(name), json=publish_body(name, "1.0.0"), headers=bearer(olga))).status == 201
    for access in ("public", "private"):
        response = await client.post("/-/package/@acme%2fui/access", json={"access": access}, headers=bearer(olga))
        assert response.status == 200, await response.text()
        status = 200 if access == "public" else 404
        for _ in range(2):
            assert (await client.get(path_of(name))).status == status
            assert (await client.get(tarball)).status == status


async def test_past_the_ttl_storage_confirms_a_replay_or_another_instances_change_ends_it(
    make_client: MakeClient,
) -> None:
    here = await make_client(cache={"packument_ttl": "1s"})
    there = await make_client(cache={"packument_ttl": "1s"})  # another instance on the same storage
    alice = await add_user(here, "alice")
    assert await publish(here, alice, "fr", "1.0.0") == 201
    fast = fast_reads(here)
    for _ in range(2):
        assert (await here.get(TARBALL)).status == 200
        assert (await here.get("/fr")).status == 200
    await asyncio.sleep(1.2)
    hits = fast.hits
    assert (await here.get(TARBALL)).status == 200
    assert (await here.get("/fr")).status == 200
    assert fast.hits == hits + 2  # confirmed by storage, still replayed

    assert await publish(there, alice, "fr", "1.1.0") == 201
    doc = await (await there.get("/fr?write=true", headers=bearer(alice))).json()
    del doc["versions"]["1.0.0"]  # npm unpublish fr@1.0.0: the PUT also deletes its tarball
    doc["dist-tags"]["latest"] = "1.1.0"
    response = await there.put(f"/fr/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 201, await response.text()
    await asyncio.sleep(1.2)
    hits = fast.hits
    assert set((await (await here.get("/fr")).json())["versions"]) == {"1.1.0"}
    assert (await here.get(TARBALL)).status == 404
    assert fast.hits == hits
