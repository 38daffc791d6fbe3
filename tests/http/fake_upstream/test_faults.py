"""Every fault the fake upstream injects does what it says: fail, stall, drop,
corrupt, no length, slow, down, stop and start, auth required.
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import pytest

from tests.http.fake_upstream.helpers import get_json, sri
from tests.support.fake_upstream import FakeUpstream


async def test_fail_answers_the_status_for_packument_and_tarballs(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    upstream.add_package("flaky", ["1.0.0"])
    upstream.fail("flaky", 503)
    assert (await get_json(client, f"{upstream.url}/flaky"))[0] == 503
    async with client.get(upstream.tarball_url("flaky", "1.0.0")) as response:
        assert response.status == 503
    upstream.fail("/flaky/-/flaky-1.0.0.tgz", 500)
    upstream.clear_faults()
    assert (await get_json(client, f"{upstream.url}/flaky"))[0] == 200
    upstream.fail("/flaky/-/flaky-1.0.0.tgz", 500)  # one path only
    assert (await get_json(client, f"{upstream.url}/flaky"))[0] == 200
    async with client.get(upstream.tarball_url("flaky", "1.0.0")) as response:
        assert response.status == 500
    assert [request.status for request in upstream.requests] == [503, 503, 200, 200, 500]


async def test_stall_fires_client_timeout_without_blocking_others(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    upstream.add_package("slowpoke", ["1.0.0"])
    upstream.add_package("snappy", ["1.0.0"])
    upstream.stall("slowpoke", 30.0)

    async def stalled() -> None:
        async with client.get(f"{upstream.url}/slowpoke", timeout=aiohttp.ClientTimeout(total=1.0)):
            pass

    task = asyncio.create_task(stalled())
    while upstream.count("slowpoke") == 0:
        await asyncio.sleep(0.01)
    assert (await get_json(client, f"{upstream.url}/snappy"))[0] == 200
    assert not task.done()  # answered while the other one waits
    with pytest.raises(asyncio.TimeoutError):
        await task
    assert upstream.count("slowpoke") == 1


async def test_stop_ends_stalls_at_once(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("stuck", ["1.0.0"])
    upstream.stall("stuck", 60.0)
    task = asyncio.create_task(client.get(f"{upstream.url}/stuck"))
    while upstream.count("stuck") == 0:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await upstream.stop()
    assert time.monotonic() - started < 0.8  # not the stall, nor the shutdown timeout
    with pytest.raises(aiohttp.ClientError):
        await task
    assert upstream.requests[-1].status is None  # cut off: nothing was answered


async def test_drop_mid_tarball_cuts_the_body(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("dropped", ["1.0.0"], files={"big.txt": os.urandom(40_000).hex()})
    size = len(upstream.tarball_bytes("dropped", "1.0.0"))
    upstream.drop_mid_tarball("dropped", "1.0.0", 1000)
    received = b""
    async with client.get(upstream.tarball_url("dropped", "1.0.0")) as response:
        assert response.status == 200 and response.content_length == size
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in response.content.iter_any():
                received += data
    assert received == upstream.tarball_bytes("dropped", "1.0.0")[:1000]
    upstream.clear_faults()  # and the server is fine afterwards
    async with client.get(upstream.tarball_url("dropped", "1.0.0")) as response:
        assert len(await response.read()) == size


async def test_corrupt_tarball_fails_the_integrity(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("corrupted", ["1.0.0"])
    upstream.corrupt_tarball("corrupted", "1.0.0")
    good = upstream.tarball_bytes("corrupted", "1.0.0")
    async with client.get(upstream.tarball_url("corrupted", "1.0.0")) as response:
        body = await response.read()
    assert len(body) == len(good) and body != good
    assert sri(body) != upstream.packument("corrupted")["versions"]["1.0.0"]["dist"]["integrity"]
    assert sum(a != b for a, b in zip(body, good)) == 1


async def test_no_content_length_streams_chunked(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("chunky", ["1.0.0"])
    upstream.no_content_length("chunky", "1.0.0")
    async with client.get(upstream.tarball_url("chunky", "1.0.0")) as response:
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert await response.read() == upstream.tarball_bytes("chunky", "1.0.0")


async def test_slow_tarball_trickles_to_every_client(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("trickle", ["1.0.0"])
    expected = upstream.tarball_bytes("trickle", "1.0.0")
    chunks = -(-len(expected) // 100)
    upstream.slow_tarball("trickle", "1.0.0", chunk=100, delay=0.03)

    async def fetch() -> bytes:
        async with client.get(upstream.tarball_url("trickle", "1.0.0")) as response:
            assert response.content_length == len(expected)
            return await response.read()

    started = time.monotonic()
    bodies = await asyncio.gather(*(fetch() for _ in range(5)))
    assert bodies == [expected] * 5
    assert time.monotonic() - started >= 0.03 * (chunks - 1)
    assert upstream.tarball_count("trickle", "1.0.0") == 5


async def test_down_answers_503_until_back(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("sometimes", ["1.0.0"])
    upstream.set_down(True)
    assert (await get_json(client, f"{upstream.url}/sometimes"))[0] == 503
    assert (await get_json(client, f"{upstream.url}/-/ping"))[0] == 503
    upstream.set_down(False)
    assert (await get_json(client, f"{upstream.url}/sometimes"))[0] == 200


async def test_stop_refuses_connections_and_start_comes_back_on_the_same_port(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    upstream.add_package("phoenix", ["1.0.0"])
    url = upstream.url
    assert (await get_json(client, f"{url}/phoenix"))[0] == 200
    await upstream.stop()
    with pytest.raises(aiohttp.ClientConnectorError):
        await get_json(client, f"{url}/phoenix")
    await upstream.start()
    assert upstream.url == url
    assert (await get_json(client, f"{url}/phoenix"))[0] == 200


async def test_require_auth_refuses_other_credentials(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("private", ["1.0.0"])
    upstream.require_auth("Bearer s3cret")
    assert await get_json(client, f"{upstream.url}/private") == (401, {"error": "authentication required"})
    assert (await get_json(client, f"{upstream.url}/private", Authorization="Bearer wrong"))[0] == 401
    assert (await get_json(client, f"{upstream.url}/private", Authorization="Bearer s3cret"))[0] == 200
    async with client.get(upstream.tarball_url("private", "1.0.0")) as response:
        assert response.status == 401
    upstream.clear_faults()  # not a fault: still required
    assert (await get_json(client, f"{upstream.url}/private"))[0] == 401
    assert upstream.requests[2].headers["authorization"] == "Bearer s3cret"
    upstream.require_auth(None)
    assert (await get_json(client, f"{upstream.url}/private"))[0] == 200
