"""The tee: a tarball streamed from the uplink to the client and into storage
at once, and stored only when its length and integrity match the packument."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage.base import NotFound
from tests.unit.mirror_fakes import (
    UPSTREAM,
    FakeUplink,
    open_mirror,
    read_all,
    tarball_bytes,
)
from uplinks.base import UplinkError
from uplinks.events import INTEGRITY_ERROR, RECEIVED_BYTES, TARBALL_FETCH
from uplinks.mirror import AlreadyStored, Mirror
from uplinks.tee import IntegrityError

FILENAME = "left-pad-1.0.0.tgz"
URL = f"{UPSTREAM}/left-pad/-/{FILENAME}"


async def settled(mirror: Mirror) -> None:
    """Until the mirror's background fetches have finished (and their callbacks ran)."""
    for _ in range(100):
        if not mirror._download_tasks:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a tarball fetch never finished")


async def stored_bytes(mirror: Mirror) -> bytes:
    reader = await mirror.packages.store.open_tarball("left-pad", FILENAME)
    async with reader:
        return b"".join([chunk async for chunk in reader])


async def test_a_tarball_is_streamed_to_the_client_and_stored_when_its_integrity_matches(
    tmp_path: Path,
) -> None:
    data = tarball_bytes("left-pad", "1.0.0")
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": data})
    mirror, _, events = await open_mirror(tmp_path, uplink)

    download = await mirror.tarball("left-pad", FILENAME, ("up",))
    assert download is not None
    body = await read_all(download.follow())
    await settled(mirror)

    assert body == data
    assert await stored_bytes(mirror) == data
    assert uplink.tarball_requests == [URL]
    assert events.counts[("up", TARBALL_FETCH)] == 1
    assert events.counts[("up", RECEIVED_BYTES)] > len(data)  # the packument's bytes too


async def test_a_tarball_that_does_not_match_its_integrity_is_not_stored(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    uplink.tarballs[URL] = tarball_bytes("left-pad", "6.6.6")  # same length, other bytes
    mirror, packages, events = await open_mirror(tmp_path, uplink)

    download = await mirror.tarball("left-pad", FILENAME, ("up",))
    assert download is not None
    with pytest.raises(IntegrityError):
        await read_all(download.follow())
    await settled(mirror)

    with pytest.raises(NotFound):
        await packages.store.stat_tarball("left-pad", FILENAME)
    assert events.counts[("up", INTEGRITY_ERROR)] == 1
    assert events.counts[("up", TARBALL_FETCH)] == 0


async def test_the_client_never_gets_the_last_byte_of_a_tarball_that_fails_its_check(
    tmp_path: Path,
) -> None:
    good = tarball_bytes("left-pad", "1.0.0")
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": good})
    uplink.tarballs[URL] = good[:-1] + b"!"
    mirror, _, _ = await open_mirror(tmp_path, uplink)

    download = await mirror.tarball("left-pad", FILENAME, ("up",))
    assert download is not None
    received = bytearray()
    with pytest.raises(IntegrityError):
        async for chunk in download.follow():
            received += chunk

    assert len(received) < len(good)  # cut off: never a complete-looking body


async def test_a_short_tarball_is_not_stored(tmp_path: Path) -> None:
    data = tarball_bytes("left-pad", "1.0.0")
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": data})
    uplink.declared_sizes[URL] = len(data) + 100  # the connection ends early
    mirror, packages, _ = await open_mirror(tmp_path, uplink)

    download = await mirror.tarball("left-pad", FILENAME, ("up",))
    assert download is not None
    with pytest.raises(UplinkError):
        await read_all(download.follow())
    await settled(mirror)

    with pytest.raises(NotFound):
        await packages.store.stat_tarball("left-pad", FILENAME)


async def test_with_cache_off_a_tarball_is_streamed_but_not_stored(tmp_path: Path) -> None:
    data = tarball_bytes("left-pad", "1.0.0")
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": data})
    mirror, packages, _ = await open_mirror(tmp_path, uplink, cache=False)

    download = await mirror.tarball("left-pad", FILENAME, ("up",))
    assert download is not None
    assert await read_all(download.follow()) == data
    await settled(mirror)

    with pytest.raises(NotFound):
        await packages.store.stat_tarball("left-pad", FILENAME)


async def test_a_request_just_after_the_fetch_finished_is_sent_to_storage(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    mirror, _, _ = await open_mirror(tmp_path, uplink)
    download = await mirror.tarball("left-pad", FILENAME, ("up",))
    assert download is not None
    await read_all(download.follow())
    await settled(mirror)

    with pytest.raises(AlreadyStored):
        await mirror.tarball("left-pad", FILENAME, ("up",))
    assert len(uplink.tarball_requests) == 1


async def test_a_tarball_no_version_names_is_not_fetched(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    mirror, _, _ = await open_mirror(tmp_path, uplink)

    assert await mirror.tarball("left-pad", "left-pad-9.9.9.tgz", ("up",)) is None
    assert uplink.tarball_requests == []
