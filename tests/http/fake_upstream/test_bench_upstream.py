"""The bench's fake upstream (`bench/upstream.py`): every answer late by its latency,
and a count of requests by kind for the cold rows, which the count itself is not in."""

from __future__ import annotations

import time

import aiohttp

from bench.upstream import COUNTS_PATH, BenchUpstream
from tests.http.fake_upstream.helpers import get_json


async def test_the_bench_upstream_answers_late_and_counts_requests_by_kind(client: aiohttp.ClientSession) -> None:
    async with BenchUpstream(port=0, latency=0.05) as upstream:
        upstream.add_package("counted", ["1.0.0"])
        started = time.monotonic()
        for path in ("/counted", "/counted", "/counted/-/counted-1.0.0.tgz", "/missing"):
            async with client.get(upstream.url + path) as response:
                await response.read()
        assert time.monotonic() - started >= 4 * 0.05

        status, counts = await get_json(client, upstream.url + COUNTS_PATH)
        assert status == 200 and counts == {"packument": 3, "tarball": 1}
        assert upstream.requests == []  # folded into the totals: memory stays flat
        async with client.get(upstream.url + "/counted") as response:
            await response.read()
        assert (await get_json(client, upstream.url + COUNTS_PATH))[1] == {"packument": 4, "tarball": 1}
