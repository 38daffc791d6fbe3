"""Prefetch over HTTP: a cold packument or tarball request brings the packuments its
dependencies need from the fake upstream before the client asks for them, from the
uplinks the `packages:` rules name, and never at the client's cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import MIRROR
from tests.support.fake_upstream import FakeUpstream

from .conftest import MakeClient
from .test_metrics import delta, scrape

# What prefetch does is above storage: the embedded backend shows it in less time.
pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)

# add_tree("tree", 12): tree -> tree-mod-0, tree-mod-1, tree-cli, @tree/scoped;
# tree-mod-0 -> tree-mod-2, tree-mod-3, tree-leaf; tree-mod-1 -> tree-mod-4, tree-mod-5, tree-leaf;
# tree-cli -> tree-leaf, @tree/scoped; tree-mod-2 -> tree-mod-6, tree-mod-7 (a third level).
LEVEL_1 = ["tree-mod-0", "tree-mod-1", "tree-cli"]
LEVEL_2 = ["tree-mod-2", "tree-mod-3", "tree-mod-4", "tree-mod-5", "tree-leaf"]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        fake.add_tree("tree", 12)
        yield fake


def config(upstream: FakeUpstream, **uplink: Any) -> dict[str, Any]:
    return {
        "uplinks": {"up": {"url": upstream.url, "timeout": "5s", **uplink}},
        "packages": {
            "@tree/*": {"access": "$all", "publish": "$authenticated"},  # not proxied: never fetched
            "**": {"access": "$all", "publish": "$authenticated", "proxy": "up"},
        },
    }


async def settled(client: TestClient) -> None:
    prefetcher = client.app[MIRROR].prefetch
    assert prefetcher is not None
    deadline = time.monotonic() + 5
    while prefetcher.pending():
        assert time.monotonic() < deadline, "prefetch did not settle"
        await asyncio.sleep(0.01)


async def test_a_cold_tarball_request_prefetches_its_dependencies_two_levels_down(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**config(upstream))
    before = await scrape(client)

    response = await client.get("/tree/-/tree-1.1.0.tgz")  # what npm ci asks first
    assert response.status == 200 and await response.read() == upstream.tarball_bytes("tree", "1.1.0")
    await settled(client)

    assert all(upstream.count(name) == 1 for name in LEVEL_1 + LEVEL_2)
    assert upstream.count("tree-mod-6") == 0 and upstream.count("@tree/scoped") == 0
    for name in LEVEL_1 + LEVEL_2:  # the client's lookups wait for no uplink now
        assert (await client.get(f"/{name}")).status == 200
    assert all(upstream.count(name) == 1 for name in LEVEL_1 + LEVEL_2)
    after = await scrape(client)
    prefetches, lookups = "tarhold_uplink_prefetches_total", "tarhold_uplink_cache_requests_total"
    assert delta(before, after, prefetches, uplink="up", result="fetched") == 8
    assert delta(before, after, lookups, uplink="up", result="miss") == 1
    assert delta(before, after, lookups, uplink="up", result="hit") == 8  # not counting the prefetches


async def test_with_prefetch_off_only_what_clients_ask_is_fetched(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(**config(upstream, prefetch=False))

    assert (await client.get("/tree")).status == 200
    await asyncio.sleep(0.1)
    assert [request.name for request in upstream.requests] == ["tree"]


async def test_a_failing_or_stalling_dependency_costs_the_client_nothing(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    upstream.fail("tree-mod-0", 500)
    upstream.stall("tree-mod-1", 10.0)
    client = await make_client(**config(upstream))

    started = time.monotonic()
    response = await client.get("/tree")
    assert response.status == 200 and (await response.json())["name"] == "tree"
    assert (await client.get("/tree-cli")).status == 200
    assert time.monotonic() - started < 2.0
    # The stalled prefetch is still waiting for the upstream; closing the app cancels it.
