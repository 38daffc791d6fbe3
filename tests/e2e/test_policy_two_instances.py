"""A block added on one `tarhold serve` is enforced by another on the same storage within 5 s.

Two instances on one storage (S3 + DynamoDB on moto, the multi-instance
deployment, and the embedded directory with SQLite), both mirroring the
same fake upstream and neither with a `policy:` section: run-time rules
alone. A package and its tarball are mirrored through both; an admin
blocks 1.0.1 through instance A's HTTP API, and instance B, which learns of
it only by polling the database's policy stamp, must refuse the tarball and
the manifest and drop the version from its packument (latest re-pointed to
1.0.0) within 5 seconds of the POST. Deleting the rule on A lets B serve
the version again within 5 seconds too.

The fake upstream runs in the test's event loop; the servers are
subprocesses and every request goes through aiohttp, so the loop keeps
answering tarhold's upstream requests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.e2e.fixtures import TarholdServer, TarholdStorage, path_of, unique_name
from tests.support.fake_upstream import FakeUpstream
from tests.support.fake_upstream_docs import tarball_filename

pytestmark = pytest.mark.npm

ADMIN_PASSWORD = "e2e two-instance operator password"
ADMIN_HEADERS = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
PROPAGATION_LIMIT = 5.0  # seconds: what the issue promises
POLL_LIMIT = 15.0  # how long we keep looking, so a miss reports how late it was
POLL_INTERVAL = 0.1
BLOCKED = "1.0.1"
REASON = "GHSA-e2e: compromised release"


def mirror_config(upstream_url: str) -> dict[str, Any]:
    return {
        "uplinks": {"up": {"url": upstream_url, "timeout": "30s"}},
        "packages": {"**": {"access": "$all", "publish": "$authenticated", "proxy": "up"}},
    }


@dataclass(frozen=True)
class Seen:
    """What one instance answers for the package right now."""

    packument_status: int
    versions: frozenset[str]
    latest: str | None
    manifest_status: int
    tarball_status: int
    tarball: bytes

    def error(self) -> str:
        """The `error` of a refused tarball's JSON body."""
        return str(json.loads(self.tarball)["error"])


async def look(session: aiohttp.ClientSession, server: TarholdServer, name: str) -> Seen:
    base = server.url + path_of(name).lstrip("/")
    async with session.get(base, headers={"Accept": "application/json"}) as response:
        status = response.status
        doc = await response.json() if status == 200 else {}
    async with session.get(f"{base}/{BLOCKED}") as response:
        manifest_status = response.status
        await response.read()
    async with session.get(f"{base}/-/{tarball_filename(name, BLOCKED)}") as response:
        tarball_status, tarball = response.status, await response.read()
    return Seen(
        status, frozenset(doc.get("versions", {})), doc.get("dist-tags", {}).get("latest"),
        manifest_status, tarball_status, tarball,
    )


async def poll_until(
    since: float, probe: Callable[[], Awaitable[Seen]], done: Callable[[Seen], bool], what: str,
    logs: Callable[[], str],
) -> tuple[float, Seen]:
    """Probe until `done`; the seconds from `since` to the first probe that was, and that answer."""
    seen = await probe()
    while not done(seen):
        if time.monotonic() - since > POLL_LIMIT:
            pytest.fail(f"{what}: still not after {POLL_LIMIT:.0f}s; last answer {seen}{logs()}")
        await asyncio.sleep(POLL_INTERVAL)
        seen = await probe()
    return time.monotonic() - since, seen


# S3 + DynamoDB is the many-instances deployment; the embedded backend's rule
# store is the same contract (tests/http/test_policy_http.py runs it).
@pytest.mark.parametrize("tarhold_storage", ["aws"], indirect=True)
async def test_a_block_on_one_instance_is_enforced_by_the_other_within_5_seconds_and_lifted(
    tarhold_storage: TarholdStorage,
    start_tarhold_on: Callable[..., TarholdServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = unique_name("policy-demo")
    async with FakeUpstream() as fake:
        fake.add_package(name, ["1.0.0", BLOCKED])
        # Both processes inherit this; the first creates the admin, the second finds it.
        monkeypatch.setenv("TARHOLD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        monkeypatch.delenv("TARHOLD_ADMIN_TOKEN", raising=False)
        monkeypatch.delenv("TARHOLD_ADMIN_USER", raising=False)
        servers = [start_tarhold_on(tarhold_storage, config=mirror_config(fake.url)) for _ in range(2)]
        a, b = servers

        def logs() -> str:
            return "".join(f"\n--- server {i + 1}\n{s.log()}" for i, s in enumerate(servers))

        expected = fake.tarball_bytes(name, BLOCKED)
        async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
            for server in servers:  # mirrored through both
                seen = await look(session, server, name)
                assert seen.versions == {"1.0.0", BLOCKED} and seen.latest == BLOCKED, f"{server.url}: {seen}"
                assert (seen.manifest_status, seen.tarball_status) == (200, 200), f"{server.url}: {seen}"
                assert seen.tarball == expected

            posted = time.monotonic()
            body = {"kind": "block", "package": name, "versions": BLOCKED, "reason": REASON}
            async with session.post(f"{a.url}-/tarhold/policy", json=body, headers=ADMIN_HEADERS) as response:
                assert response.status == 201, f"{response.status} {await response.text()}{logs()}"
                rule_id = (await response.json())["id"]
            message = f"{name}@{BLOCKED} is blocked by rule {rule_id} ({REASON})"

            on_a = await look(session, a, name)  # the instance that wrote it: at once
            assert (on_a.tarball_status, on_a.manifest_status) == (403, 403), on_a
            assert on_a.versions == {"1.0.0"} and on_a.error() == message, on_a

            def refused(seen: Seen) -> bool:
                return seen.tarball_status == 403 and seen.manifest_status == 403 and BLOCKED not in seen.versions

            took, on_b = await poll_until(posted, lambda: look(session, b, name), refused, "B refusing", logs)
            assert took < PROPAGATION_LIMIT, f"instance B enforced the block {took:.2f}s after the POST{logs()}"
            assert on_b.packument_status == 200 and on_b.versions == {"1.0.0"} and on_b.latest == "1.0.0", on_b
            assert on_b.error() == message, on_b

            deleted = time.monotonic()
            async with session.delete(f"{a.url}-/tarhold/policy/{rule_id}", headers=ADMIN_HEADERS) as response:
                assert response.status == 200, f"{response.status} {await response.text()}{logs()}"

            def served(seen: Seen) -> bool:
                return seen.tarball_status == 200 and seen.manifest_status == 200 and BLOCKED in seen.versions

            took_back, on_b = await poll_until(deleted, lambda: look(session, b, name), served, "B serving", logs)
            assert took_back < PROPAGATION_LIMIT, f"instance B lifted the block {took_back:.2f}s after the DELETE"
            assert on_b.tarball == expected and on_b.latest == BLOCKED, on_b
        print(
            f"\n[policy, {tarhold_storage.backend}] block enforced by the other instance after {took:.2f}s,"
            f" lifted after {took_back:.2f}s"
        )
