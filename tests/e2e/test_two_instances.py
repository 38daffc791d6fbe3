"""Two `tarhold serve` processes on one storage behave as one registry.

The embedded storage (one directory, one SQLite file) and S3 + DynamoDB on
moto (one bucket + key prefix, one table): 16 different versions of one
package are published at the same moment, spread over both instances. Every
version must survive the race (the packument's conditional writes), every
tarball must come back byte for byte from either instance, and npm must
install from either.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable

import aiohttp
import pytest

from registry.domain.caches import CacheConfig
from tests.e2e.fixtures import (
    NewNpm,
    TarholdServer,
    TarholdStorage,
    index_js,
    installed_file,
    path_of,
    unique_name,
)
from tests.http.packages import make_tarball, publish_body, tarball_name

pytestmark = pytest.mark.npm

VERSIONS = [f"1.0.{patch}" for patch in range(16)]
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)


async def publish_all(
    servers: list[TarholdServer], token: str, name: str, tarballs: dict[str, bytes]
) -> list[tuple[str, int, str]]:
    """PUT every version at once, version i to servers[i % len(servers)]."""
    headers = {"Authorization": f"Bearer {token}"}
    start = asyncio.Event()

    async def publish(session: aiohttp.ClientSession, i: int, version: str) -> tuple[str, int, str]:
        server = servers[i % len(servers)]
        body = publish_body(name, version, tarballs[version], base=server.url.rstrip("/"))
        await start.wait()
        url = server.url + path_of(name).lstrip("/")
        async with session.put(url, json=body, headers=headers) as response:
            return version, response.status, await response.text()

    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        tasks = [asyncio.create_task(publish(session, i, v)) for i, v in enumerate(VERSIONS)]
        await asyncio.sleep(0)  # every task built its body and waits at the line
        start.set()
        return await asyncio.gather(*tasks)


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url) as response:
        return response.status, await response.read()


async def packuments_and_tarballs(
    servers: list[TarholdServer], name: str
) -> tuple[list[dict], dict[tuple[int, str], tuple[int, bytes]]]:
    """The packument from each server, and every tarball its packument names."""
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        packuments = []
        for server in servers:
            async with session.get(
                server.url + path_of(name).lstrip("/"), headers={"Accept": "application/json"}
            ) as response:
                assert response.status == 200, await response.text()
                packuments.append(await response.json())
        jobs = {
            (i, version): fetch(session, manifest["dist"]["tarball"])
            for i, packument in enumerate(packuments)
            for version, manifest in packument["versions"].items()
        }
        results = await asyncio.gather(*jobs.values())
        return packuments, dict(zip(jobs, results))


async def test_concurrent_publishes_on_two_instances_keep_every_version(
    tarhold_storage: TarholdStorage,
    start_tarhold_on: Callable[[TarholdStorage], TarholdServer],
    new_npm: NewNpm,
) -> None:
    servers = [start_tarhold_on(tarhold_storage), start_tarhold_on(tarhold_storage)]
    user = unique_name("racer")
    token = servers[0].add_user(user)  # one database: the token works on both
    name = unique_name("e2e-race")
    tarballs = {
        v: make_tarball(name, v, files={"index.js": index_js(name, v)}) for v in VERSIONS
    }

    results = await publish_all(servers, token, name, tarballs)
    failed = [(v, status, text) for v, status, text in results if status != 201]
    logs = "".join(f"\n--- server {i + 1}\n{s.log()}" for i, s in enumerate(servers))
    assert not failed, f"publishes refused: {failed}{logs}"

    # Each instance serves a packument from memory for cache.packument_ttl: a
    # publish on the other one is promised to show within that, not sooner.
    await asyncio.sleep(CacheConfig().packument_ttl + 0.5)
    packuments, downloads = await packuments_and_tarballs(servers, name)
    for i, (server, packument) in enumerate(zip(servers, packuments)):
        by_patch = sorted(packument["versions"], key=lambda v: int(v.split(".")[2]))
        assert by_patch == VERSIONS, f"server {i + 1}"
        assert packument["dist-tags"]["latest"] in VERSIONS
        for version, manifest in packument["versions"].items():
            data = tarballs[version]
            dist = manifest["dist"]
            assert dist["tarball"] == f"{server.url}{name}/-/{tarball_name(name, version)}"
            assert dist["shasum"] == hashlib.sha1(data).hexdigest()
            assert dist["integrity"] == "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
            assert downloads[(i, version)] == (200, data), f"{version} from server {i + 1}"

    # npm installs from either instance: exact versions, and a range that
    # npm resolves to the version `latest` names (it lies inside the range).
    latest = packuments[0]["dist-tags"]["latest"]
    for server, spec, expected in (
        (servers[0], "1.0.3", "1.0.3"),
        (servers[1], "1.0.12", "1.0.12"),
        (servers[1], "1.0.x", latest),
    ):
        project = new_npm(server, None).install(f"{name}@{spec}")
        assert installed_file(project, name) == index_js(name, expected), f"{name}@{spec} from {server.url}"
