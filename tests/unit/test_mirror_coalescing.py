"""Request coalescing: however many callers ask for one name (or one tarball)
at the same moment, the uplink is asked once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.unit.mirror_fakes import FakeUplink, open_mirror, read_all, tarball_bytes
from uplinks.events import MISS


async def test_concurrent_requests_for_one_name_make_one_upstream_fetch(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    uplink.delay = 0.05
    mirror, packages, events = await open_mirror(tmp_path, uplink)

    answers = await asyncio.gather(*(mirror.packument("left-pad", ("up",)) for _ in range(50)))

    assert uplink.packument_requests == [("left-pad", None)]
    assert {a.token for a in answers if a is not None} == {answers[0].token} and None not in answers
    assert events.counts[("up", MISS)] == 1
    assert packages.changes == ["left-pad"]  # stored once


async def test_requests_for_different_names_are_not_held_by_each_other(tmp_path: Path) -> None:
    uplink = FakeUplink()
    for name in ("left-pad", "right-pad"):
        uplink.publish(name, {"1.0.0": tarball_bytes(name, "1.0.0")})
    uplink.delay = 0.05
    mirror, _, _ = await open_mirror(tmp_path, uplink)

    left, right = await asyncio.gather(
        mirror.packument("left-pad", ("up",)), mirror.packument("right-pad", ("up",))
    )

    assert left is not None and left.doc["name"] == "left-pad"
    assert right is not None and right.doc["name"] == "right-pad"
    assert sorted(name for name, _ in uplink.packument_requests) == ["left-pad", "right-pad"]


async def test_a_caller_that_goes_away_does_not_cancel_the_others_fetch(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    uplink.delay = 0.05
    mirror, _, _ = await open_mirror(tmp_path, uplink)
    leaving = asyncio.ensure_future(mirror.packument("left-pad", ("up",)))
    staying = asyncio.ensure_future(mirror.packument("left-pad", ("up",)))
    await asyncio.sleep(0.01)

    leaving.cancel()
    current = await staying

    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert current is not None and current.doc["name"] == "left-pad"
    assert len(uplink.packument_requests) == 1


async def test_concurrent_requests_for_one_tarball_share_one_download(tmp_path: Path) -> None:
    data = tarball_bytes("left-pad", "1.0.0")
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": data})
    uplink.gate = asyncio.Event()  # the bytes wait until every caller has joined
    mirror, _, _ = await open_mirror(tmp_path, uplink)

    downloads = await asyncio.gather(
        *(mirror.tarball("left-pad", "left-pad-1.0.0.tgz", ("up",)) for _ in range(20))
    )
    bodies = [download.follow() for download in downloads if download is not None]
    uplink.gate.set()

    assert len({id(download) for download in downloads}) == 1 and len(bodies) == 20
    assert [await read_all(body) for body in bodies] == [data] * 20
    assert len(uplink.tarball_requests) == 1


async def test_a_refresh_that_ends_during_a_slow_storage_read_is_not_fetched_again(tmp_path: Path) -> None:
    # The race a busy S3 showed: a second caller reads storage before the
    # first caller's refresh writes, gets its answer after that refresh has
    # ended (and left the in-flight map), and must not fetch a second time.
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    uplink.delay = 0.05
    mirror, packages, _ = await open_mirror(tmp_path, uplink)
    answer_late = asyncio.Event()
    original_read = packages.read

    async def read(name: str, *, cached: bool = False) -> Any:
        result = await original_read(name, cached=cached)
        if answer_late.is_set():
            await asyncio.sleep(0.15)  # the answer is what storage held before the refresh wrote
        return result

    packages.read = read  # type: ignore[method-assign]
    first = asyncio.ensure_future(mirror.packument("left-pad", ("up",)))
    await asyncio.sleep(0.01)  # the first caller is fetching now
    answer_late.set()
    second = await mirror.packument("left-pad", ("up",))

    assert (await first) is not None and second is not None
    assert second.token == (await first).token
    assert uplink.packument_requests == [("left-pad", None)]
