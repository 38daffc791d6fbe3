"""When the uplinks fail: the mirror's own errors, the circuit breaker's state
reported as events, and the registry's mapping of those errors to 502 and 503."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.domain.errors import BadGateway, ServiceUnavailable
from registry.http.uplink_mirror import RegistryMirror
from storage.fs import FsPackageStore
from tests.unit.mirror_fakes import (
    UPSTREAM,
    FakeUplink,
    RecordingEvents,
    StorePackages,
    open_mirror,
)
from uplinks.config import UplinkConfig
from uplinks.errors import UplinkBadGateway, UplinkUnavailable
from uplinks.events import FETCH_ERROR


async def test_an_uplink_that_fails_without_a_stored_copy_is_a_bad_gateway(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.failing = True
    mirror, _, events = await open_mirror(tmp_path, uplink)

    with pytest.raises(UplinkBadGateway, match="could not fetch left-pad from its uplinks: up: "):
        await mirror.packument("left-pad", ("up",))
    assert events.counts[("up", FETCH_ERROR)] == 1
    assert "up" in mirror.stats.last_error


async def test_a_name_no_uplink_knows_is_none(tmp_path: Path) -> None:
    mirror, _, _ = await open_mirror(tmp_path, FakeUplink())

    assert await mirror.packument("left-pad", ("up",)) is None


async def test_the_circuit_opens_after_max_fails_and_then_the_uplink_is_unavailable(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.failing = True
    mirror, _, events = await open_mirror(tmp_path, uplink, max_fails=2, fail_timeout=60)
    assert events.circuit == {"up": "closed"}

    for _ in range(2):
        with pytest.raises(UplinkBadGateway):
            await mirror.packument("left-pad", ("up",))
    with pytest.raises(UplinkUnavailable, match="^every uplink for left-pad is failing; try again later$"):
        await mirror.packument("left-pad", ("up",))

    assert events.circuit == {"up": "open"}
    assert len(uplink.packument_requests) == 2  # the open circuit asked nobody


async def test_the_registry_mirror_raises_the_registrys_502_and_503(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.failing = True
    store = FsPackageStore(tmp_path)
    await store.open()
    config = UplinkConfig(name="up", url=UPSTREAM, max_fails=1)
    mirror = RegistryMirror(StorePackages(store), {"up": config}, events=RecordingEvents())
    mirror.uplinks["up"] = uplink

    with pytest.raises(BadGateway) as bad:
        await mirror.packument("left-pad", ("up",))
    with pytest.raises(ServiceUnavailable) as unavailable:
        await mirror.packument("left-pad", ("up",))

    assert bad.value.status == 502 and bad.value.message.startswith("could not fetch left-pad")
    assert unavailable.value.status == 503
    assert unavailable.value.message == "every uplink for left-pad is failing; try again later"
