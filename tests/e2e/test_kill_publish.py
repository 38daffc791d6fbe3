"""kill -9 of a real `tarhold serve` in the middle of publishes locks nothing and loses nothing.

Six publishers send versions of one package; three times the server is
killed with SIGKILL while publishes are in flight, and started again on the
same storage. Afterwards: every acknowledged version is there with its exact
tarball; every version that got no answer is either there whole or absent
with no tarball served, and an absent one publishes again at once (the
dead publisher's lease is taken over, not waited out).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from storage.backends import build_backends
from storage.base import RegistryDatabase
from tests.e2e.fixtures import TarholdServer, TarholdStorage, path_of, unique_name
from tests.http.packages import make_tarball, publish_body, tarball_name

pytestmark = pytest.mark.npm

PUBLISHERS = 6
VERSIONS_EACH = 10
KILLS = 3
KILL_AFTER_ACKS = 4  # answered publishes per round before the kill
TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass
class Ledger:
    tarballs: dict[str, bytes]
    waiting: dict[int, list[str]]  # publisher -> versions it has yet to send
    acknowledged: set[str] = field(default_factory=set)
    unanswered: set[str] = field(default_factory=set)


def open_database(storage: TarholdStorage) -> RegistryDatabase:
    """The registry database the servers use, for the test to watch (not yet opened)."""
    if storage.directory is not None:
        return build_backends("fs", path=str(storage.directory))[1]
    return build_backends("aws-s3-storage", section=storage.store_section)[1]


async def lease_held(db: RegistryDatabase, name: str) -> bool:
    return any([item async for item in db.query(f"PUBLISH#{name}")])


async def publish_round(
    server: TarholdServer, token: str, name: str, ledger: Ledger, db: RegistryDatabase
) -> tuple[int, bool]:
    """Publish until the server is killed, once KILL_AFTER_ACKS were answered and a
    publish holds its version's lease; (how many were in flight, whether one held it)."""
    url = server.url + path_of(name).lstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    in_flight: set[str] = set()
    acks = cut = 0
    killed = asyncio.Event()

    async def publisher(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal acks, cut
        versions = ledger.waiting[index]
        while versions and not killed.is_set():
            version = versions[0]
            body = publish_body(name, version, ledger.tarballs[version], base=server.url.rstrip("/"))
            in_flight.add(version)
            try:
                async with session.put(url, json=body, headers=headers) as response:
                    text = await response.text()
            except aiohttp.ClientError:
                ledger.unanswered.add(version)
                versions.pop(0)
                return
            finally:
                in_flight.discard(version)
            assert response.status == 201, f"{version}: {response.status} {text}"
            ledger.acknowledged.add(version)
            versions.pop(0)
            acks += 1

    async def killer() -> bool:
        nonlocal cut
        while acks < KILL_AFTER_ACKS:
            await asyncio.sleep(0.005)
        deadline = time.monotonic() + 5
        held = False
        while not held and time.monotonic() < deadline:
            held = await lease_held(db, name)
        killed.set()
        cut = len(in_flight)
        os.kill(server.process.pid, signal.SIGKILL)  # the server this test started
        return held

    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        *_, held = await asyncio.gather(*(publisher(session, i) for i in range(PUBLISHERS)), killer())
    server.process.process.wait(10)
    return cut, held


async def test_kill_9_during_publishes_locks_no_version_and_loses_nothing(
    tarhold_storage: TarholdStorage, start_tarhold_on: Callable[..., TarholdServer]
) -> None:
    name = unique_name("killed")
    versions = {i: [f"{i + 1}.{k}.0" for k in range(VERSIONS_EACH)] for i in range(PUBLISHERS)}
    rng = random.Random(15)
    ledger = Ledger(
        tarballs={  # incompressible content: each publish takes a moment
            v: make_tarball(name, v, files={"blob.bin": rng.randbytes(200_000).hex()})
            for vs in versions.values() for v in vs
        },
        waiting={i: list(vs) for i, vs in versions.items()},
    )
    server = start_tarhold_on(tarhold_storage)
    token = server.add_user(unique_name("killer"))
    cut_off = held = 0
    db = open_database(tarhold_storage)
    await db.open()
    try:
        for _ in range(KILLS):
            cut, lease = await publish_round(server, token, name, ledger, db)
            cut_off, held = cut_off + cut, held + lease
            server = start_tarhold_on(tarhold_storage)  # the same storage, a new process
    finally:
        await db.close()
    assert ledger.unanswered, "no publish was cut off by the kills: the test proved nothing"
    assert cut_off >= len(ledger.unanswered)
    assert held, "no kill hit a publish holding its lease: the takeover went untested"

    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(server.url + path_of(name).lstrip("/")) as response:
            assert response.status == 200
            stored = set((await response.json())["versions"])
        missing = ledger.acknowledged - stored
        assert not missing, f"acknowledged versions lost: {sorted(missing)}"
        for version in sorted(ledger.acknowledged | ledger.unanswered):
            async with session.get(f"{server.url}{name}/-/{tarball_name(name, version)}") as response:
                data = await response.read()
            if version in stored:  # landed (answered or not): whole
                assert response.status == 200, version
                assert hashlib.sha256(data).digest() == hashlib.sha256(ledger.tarballs[version]).digest()
            else:  # never landed: its orphan tarball, if any, is not served
                assert response.status == 404, f"orphan tarball of {version} served"

        # Every unanswered version that did not land publishes again at once.
        url = server.url + path_of(name).lstrip("/")
        began = time.monotonic()
        for version in sorted(ledger.unanswered - stored):
            body = publish_body(name, version, ledger.tarballs[version], base=server.url.rstrip("/"))
            async with session.put(url, json=body, headers=headers) as response:
                assert response.status == 201, f"{version}: {response.status} {await response.text()}"
        assert time.monotonic() - began < 10  # no lease waited out (each is 15 s)
        # And what was never sent publishes too.
        for version in sorted(v for vs in ledger.waiting.values() for v in vs):
            body = publish_body(name, version, ledger.tarballs[version], base=server.url.rstrip("/"))
            async with session.put(url, json=body, headers=headers) as response:
                assert response.status == 201, f"{version}: {response.status} {await response.text()}"
