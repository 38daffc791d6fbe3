"""kill -9 of a real `tarhold serve` mid-mirror leaves nothing partial visible (issue 15).

A fake upstream sends part of a tarball and stalls; tarhold streams that part
to a client while it writes the tarball to storage; then tarhold is killed
with SIGKILL, so no cleanup of its own runs. A new tarhold on the same
storage must not serve the partial file: the next GET fetches the tarball
from the upstream again (its request count grows) and answers its exact bytes.

- embedded storage: the killed write leaves a temp file, never a package file;
- S3 (moto), a tarball under the multipart threshold: nothing was uploaded;
- S3, a tarball over it (`PART_SIZE`): the upload is left in progress with a
  part sent; the next start, with `abort_multipart_after: 0`, aborts it.

The fake upstream runs in the test's event loop, so everything that waits on
tarhold does so without blocking the loop. Only processes this test started
are killed, by their PID; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from storage.backends import build_package_store
from storage.base import NotFound, PackageStore
from storage.s3 import S3PackageStore
from storage.s3_multipart import PART_SIZE
from tests.e2e.conftest import make_storage
from tests.e2e.fixtures import (
    SERVER_START_TIMEOUT,
    TARHOLD,
    TarholdServer,
    TarholdStorage,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.fake_upstream_docs import tarball_filename
from tests.support.servers import ServerProcess, free_port

MiB = 1024 * 1024
STALL = 60.0  # seconds the upstream waits mid-tarball; the test kills tarhold long before
WAIT = 15.0  # seconds to wait for tarhold to reach a state


# -- tarhold and the upstream -------------------------------------------------------


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


@pytest.fixture(autouse=True)
def own_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tarhold's temporary files go under the test's directory, which must stay empty:
    a killed process cannot remove its own spool files, so it must leave none by name."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    yield spool
    assert not list(spool.iterdir()), "a killed tarhold left temporary files behind"


async def start_mirror(storage: TarholdStorage, workdir: Path, uplink_url: str, name: str) -> TarholdServer:
    """`tarhold serve` mirroring `uplink_url` on `storage`, answering /-/ping; the loop keeps running."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        **storage.config(port),
        "uplinks": {"up": {"url": uplink_url, "timeout": "30s"}},
        "packages": {"**": {"access": "$all", "publish": "$authenticated", "proxy": "up"}},
    }
    (workdir / f"{name}.yaml").write_text(yaml.safe_dump(config))
    argv = [str(TARHOLD), "serve", "-c", str(workdir / f"{name}.yaml")]
    server = TarholdServer(ServerProcess.spawn(name, argv, cwd=workdir, log_dir=workdir), port, storage)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if server.process.process.poll() is not None:
                pytest.fail(f"{name} exited before it answered:\n{server.log()}")
            try:
                async with session.get(f"{server.url}-/ping") as response:
                    if response.status == 200:
                        return server
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"{name} did not answer /-/ping:\n{server.log()}")
            await asyncio.sleep(0.1)


def kill_9(server: TarholdServer) -> None:
    """SIGKILL the one process this test started, by its PID, and reap it."""
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.process.wait(10)
    server.stop()  # closes its log; the process is gone


def add_large_package(upstream: FakeUpstream, name: str, size: int) -> bytes:
    """A package whose one tarball is about `size` bytes (gzip takes base64 back to about its source)."""
    text = base64.b64encode(random.Random(name).randbytes(size)).decode()
    upstream.add_package(name, ["1.0.0"], files={"data.txt": text})
    return upstream.tarball_bytes(name, "1.0.0")


async def until(check: Callable[[], Awaitable[bool]], what: str, server: TarholdServer) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {WAIT:.0f}s for {what}; tarhold's log:\n{server.log()}")
        await asyncio.sleep(0.05)


async def fetch(url: str, received: list[int]) -> bytes:
    """GET url; `received[0]` counts the bytes as they arrive."""
    body = bytearray()
    timeout = aiohttp.ClientTimeout(total=WAIT * 4)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_any():
            body += chunk
            received[0] += len(chunk)
    return bytes(body)


async def packument_status(server: TarholdServer, name: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}{name}") as response:
        return response.status


async def opened_store(storage: TarholdStorage) -> PackageStore:
    if storage.directory is not None:
        store = build_package_store("fs", path=str(storage.directory))
    else:
        section = {**(storage.store_section or {}), "abort_multipart_after": False}  # look, don't touch
        store = build_package_store("aws-s3-storage", section=section)
    await store.open()
    return store


async def visible(store: PackageStore, name: str, filename: str) -> bool:
    try:
        await store.stat_tarball(name, filename)
    except NotFound:
        return False
    return True


async def kill_mid_stream(
    upstream: FakeUpstream, server: TarholdServer, name: str, stalled: Callable[[], Awaitable[bool]]
) -> None:
    """GET the tarball through `server` until `stalled()` says it is mid-write, then kill -9 it."""
    url = f"{server.url}{name}/-/{tarball_filename(name, '1.0.0')}"
    assert await packument_status(server, name) == 200
    received = [0]
    client = asyncio.create_task(fetch(url, received))

    async def streaming() -> bool:
        if client.done():
            await client  # an early failure says why
            pytest.fail("the client got the whole tarball: the upstream did not stall")
        return received[0] > 0 and await stalled()

    try:
        await until(streaming, "tarhold to stream part of the tarball and write it to storage", server)
    finally:
        kill_9(server)
    with pytest.raises(aiohttp.ClientError):
        await client
    assert upstream.tarball_count(name, "1.0.0") == 1


async def refetch(upstream: FakeUpstream, server: TarholdServer, name: str, expected: bytes) -> None:
    """The next GET fetches the tarball from the upstream again and answers its exact bytes."""
    url = f"{server.url}{name}/-/{tarball_filename(name, '1.0.0')}"
    assert await fetch(url, [0]) == expected
    assert upstream.tarball_count(name, "1.0.0") == 2


# -- the tests ----------------------------------------------------------------------


async def test_a_tarball_mirrored_when_tarhold_was_killed_is_fetched_again(
    upstream: FakeUpstream, tarhold_storage: TarholdStorage, tmp_path: Path
) -> None:
    name = f"killed-{tarhold_storage.backend}"
    expected = add_large_package(upstream, name, 2 * MiB)  # under PART_SIZE: one PutObject on S3
    upstream.slow_tarball(name, "1.0.0", chunk=MiB, delay=STALL)
    filename = tarball_filename(name, "1.0.0")
    store = await opened_store(tarhold_storage)
    try:
        first = await start_mirror(tarhold_storage, tmp_path / "first", upstream.url, "tarhold-1")

        async def writing() -> bool:
            if tarhold_storage.directory is None:
                return True  # S3: the part is in tarhold's memory until the stream ends
            return any(f.partial and f.size > 0 for f in await store.list_stored_files(name))

        await kill_mid_stream(upstream, first, name, writing)
        assert not await visible(store, name, filename)
        assert filename not in await store.list_files(name)

        upstream.clear_faults()
        second = await start_mirror(tarhold_storage, tmp_path / "second", upstream.url, "tarhold-2")
        try:
            await refetch(upstream, second, name, expected)
            await until(lambda: visible(store, name, filename), "the tarball to be stored", second)
        finally:
            second.stop()
    finally:
        await store.close()


async def test_a_multipart_upload_killed_midway_is_aborted_on_the_next_start(
    upstream: FakeUpstream, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    storage = make_storage("aws", request, tmp_path / "storage")
    name = "killed-multipart"
    expected = add_large_package(upstream, name, PART_SIZE + 3 * MiB)
    assert len(expected) > PART_SIZE + MiB
    upstream.slow_tarball(name, "1.0.0", chunk=PART_SIZE + MiB, delay=STALL)  # one part's worth, then a stall
    filename = tarball_filename(name, "1.0.0")
    store = await opened_store(storage)
    assert isinstance(store, S3PackageStore)
    key = store.file_key(name, filename)

    async def uploads() -> dict[str, Any]:
        answer = await store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.root_prefix())
        return {u["Key"]: u["UploadId"] for u in answer.get("Uploads") or ()}

    async def part_sent() -> bool:
        upload_id = (await uploads()).get(key)
        if upload_id is None:
            return False
        parts = await store.client.list_parts(Bucket=store.bucket, Key=key, UploadId=upload_id)
        return bool(parts.get("Parts"))

    try:
        first = await start_mirror(storage, tmp_path / "first", upstream.url, "tarhold-1")
        await kill_mid_stream(upstream, first, name, part_sent)
        assert key in await uploads()  # abandoned: nobody aborted it
        assert not await visible(store, name, filename)

        upstream.clear_faults()
        restarted = TarholdStorage("aws", store_section={**(storage.store_section or {}), "abort_multipart_after": 0})
        second = await start_mirror(restarted, tmp_path / "second", upstream.url, "tarhold-2")
        try:
            assert await uploads() == {}  # aborted while it started
            assert "aborted multipart upload" in second.log()
            assert not await visible(store, name, filename)
            await refetch(upstream, second, name, expected)
            await until(lambda: visible(store, name, filename), "the tarball to be stored", second)
            assert await uploads() == {}
        finally:
            second.stop()
    finally:
        await store.close()
