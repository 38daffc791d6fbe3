"""Publish leases on every registry database: held, renewed, released, taken over.

A lease is what makes a version publishable again soon after its publisher
died (kill -9): by takeover at once when the dead holder ran on this host,
by expiry otherwise. Runs on SQLite, DynamoDB on moto and DynamoDB Local.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from registry.domain import leases
from registry.domain.errors import ConflictError, ServiceUnavailable
from registry.domain.leases import Holder, Lease, process_started, this_process
from storage.base import NotFound, RegistryDatabase

PK = "PUBLISH#lease-test"


def dead_holder_here() -> Holder:
    """A holder that was a real process on this host, and has exited."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = process_started(child.pid)
        assert started, "no /proc start time for a live child"
    finally:
        child.kill()
        child.wait()
    return Holder(this_process().host, child.pid, started)


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "LEASE_SECONDS", 2)
    monkeypatch.setattr(leases, "RENEW_EVERY", 0.5)


async def test_a_held_lease_refuses_a_second_holder_until_released(registry_database: RegistryDatabase) -> None:
    async with Lease(registry_database, PK, "1.0.0", "pkg@1.0.0") as held:
        held.check()
        with pytest.raises(ConflictError, match="being published by another request"):
            async with Lease(registry_database, PK, "1.0.0", "pkg@1.0.0"):
                pass
        async with Lease(registry_database, PK, "1.0.1", "pkg@1.0.1"):
            pass  # another version is free
    with pytest.raises(NotFound):
        await registry_database.get(PK, "1.0.0")
    async with Lease(registry_database, PK, "1.0.0", "pkg@1.0.0"):
        pass


async def test_a_lease_whose_holder_died_on_this_host_is_taken_over_at_once(
    registry_database: RegistryDatabase,
) -> None:
    gone = dead_holder_here()
    assert gone.is_gone()
    await registry_database.put(
        PK, "2.0.0", {"started": "x", "holder": gone.as_item()}, if_absent=True, expires=int(time.time()) + 600
    )
    began = time.monotonic()
    async with Lease(registry_database, PK, "2.0.0", "pkg@2.0.0") as lease:
        lease.check()
    assert time.monotonic() - began < 2


@pytest.mark.parametrize("holder", [
    {"host": "another-machine/boot/pid:[1]", "pid": 1, "started": "100"},  # elsewhere: cannot tell
    "not a holder",  # written by something else: never taken over
])
async def test_a_lease_held_elsewhere_is_freed_by_expiry_only(
    registry_database: RegistryDatabase, short_lease: None, holder: object
) -> None:
    await registry_database.put(
        PK, "3.0.0", {"holder": holder}, if_absent=True, expires=int(time.time()) + 2
    )
    with pytest.raises(ConflictError):
        async with Lease(registry_database, PK, "3.0.0", "pkg@3.0.0"):
            pass
    await asyncio.sleep(2.2)
    async with Lease(registry_database, PK, "3.0.0", "pkg@3.0.0"):
        pass


async def test_a_live_holder_on_this_host_is_not_taken_over(registry_database: RegistryDatabase) -> None:
    assert not this_process().is_gone()
    async with Lease(registry_database, PK, "4.0.0", "pkg@4.0.0"):
        with pytest.raises(ConflictError):
            async with Lease(registry_database, PK, "4.0.0", "pkg@4.0.0"):
                pass


async def test_renewal_keeps_a_long_publish_s_lease_past_its_expiry(
    registry_database: RegistryDatabase, short_lease: None
) -> None:
    async with Lease(registry_database, PK, "5.0.0", "pkg@5.0.0") as lease:
        await asyncio.sleep(3)  # 1.5 leases
        lease.check()
        item = await registry_database.get(PK, "5.0.0")
        assert item["ver"] > 1  # renewed
        with pytest.raises(ConflictError):
            async with Lease(registry_database, PK, "5.0.0", "pkg@5.0.0"):
                pass


async def test_a_lease_taken_away_is_noticed_and_the_holder_may_not_commit(
    registry_database: RegistryDatabase, short_lease: None
) -> None:
    async with Lease(registry_database, PK, "6.0.0", "pkg@6.0.0") as lease:
        await registry_database.delete(PK, "6.0.0")
        await registry_database.put(PK, "6.0.0", {"holder": "someone else"}, if_absent=True)
        await asyncio.sleep(1)  # a renewal ran
        with pytest.raises(ServiceUnavailable, match="lost the lease"):
            lease.check()
    # Leaving did not delete the new holder's item.
    assert (await registry_database.get(PK, "6.0.0"))["holder"] == "someone else"
