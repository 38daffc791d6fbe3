"""A stalling upstream takes the uplink offline after max_fails (issue 15, item 1), on every backend.

With `max_fails: 2`, at most two uncached requests reach a stalling
upstream; the others answer 503 at once; a cached package is served stale;
after `fail_timeout` one probe brings the uplink back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from tests.support.fake_upstream import FakeUpstream

from .conftest import MakeClient

NAMES = [f"stalled-{i}" for i in range(6)]
# fail_timeout no longer than timeout: the case a sliding window of failures never opened on.
STALL_CONFIG = {"timeout": "1s", "fail_timeout": "1s", "max_fails": 2, "maxage": "0s"}


@pytest.fixture
async def stalling() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        for name in [*NAMES, "cached"]:
            fake.add_package(name, ["1.0.0"])
        yield fake


async def stalled_client(make_client: MakeClient, upstream: FakeUpstream) -> TestClient:
    return await make_client(
        uplinks={"up": {"url": upstream.url, **STALL_CONFIG}},
        packages={"**": {"access": "$all", "publish": "$authenticated", "proxy": "up"}},
    )


async def timed_get(client: TestClient, path: str) -> tuple[int, float]:
    started = time.monotonic()
    response = await client.get(path)
    await response.read()
    return response.status, time.monotonic() - started


def reached(upstream: FakeUpstream) -> int:
    return sum(upstream.count(name) for name in NAMES)


async def test_one_request_after_another_reaches_a_stalling_upstream_twice(
    make_client: MakeClient, stalling: FakeUpstream
) -> None:
    client = await stalled_client(make_client, stalling)
    assert (await client.get("/cached")).status == 200  # a copy to serve stale later
    for name in NAMES:
        stalling.stall(name, 30)
    stalling.stall("cached", 30)
    answers = [await timed_get(client, f"/{name}") for name in NAMES]
    assert [status for status, _ in answers[:2]] == [502, 502]
    assert all(status == 503 and seconds < 0.1 for status, seconds in answers[2:]), answers
    assert reached(stalling) == 2
    status, seconds = await timed_get(client, "/cached")
    assert status == 200 and seconds < 0.1  # stale, at once


async def test_requests_arriving_during_the_stall_do_not_all_reach_it(
    make_client: MakeClient, stalling: FakeUpstream
) -> None:
    client = await stalled_client(make_client, stalling)
    for name in NAMES:
        stalling.stall(name, 30)

    async def later(delay: float, name: str) -> tuple[int, float]:
        await asyncio.sleep(delay)
        return await timed_get(client, f"/{name}")

    answers = await asyncio.gather(*(later(0.3 * i, name) for i, name in enumerate(NAMES)))
    assert reached(stalling) == 2, answers
    assert [status for status, _ in answers].count(503) == 4
    assert all(seconds < 0.1 for status, seconds in answers if status == 503)


async def test_after_fail_timeout_one_probe_brings_it_back(make_client: MakeClient, stalling: FakeUpstream) -> None:
    client = await stalled_client(make_client, stalling)
    for name in NAMES[:2]:
        stalling.stall(name, 30)
    for name in NAMES[:2]:
        assert (await client.get(f"/{name}")).status == 502
    assert (await client.get(f"/{NAMES[2]}")).status == 503
    stalling.clear_faults()
    await asyncio.sleep(1.1)
    assert (await client.get(f"/{NAMES[2]}")).status == 200  # the probe
    assert (await client.get(f"/{NAMES[3]}")).status == 200  # closed again
