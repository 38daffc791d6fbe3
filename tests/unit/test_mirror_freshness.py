"""The mirror's freshness: a copy is served without asking the uplink for
`maxage`, then revalidated with the validator it was fetched with."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.unit.mirror_fakes import FakeUplink, open_mirror, tarball_bytes
from uplinks.documents import MIRROR_MARK
from uplinks.events import HIT, MISS, REVALIDATED, STALE


async def test_a_fresh_copy_is_served_without_asking_the_uplink(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    mirror, _, events = await open_mirror(tmp_path, uplink, maxage=120)

    first = await mirror.packument("left-pad", ("up",))
    again = await mirror.packument("left-pad", ("up",))

    assert first is not None and again is not None
    assert again.token == first.token and list(again.doc["versions"]) == ["1.0.0"]
    assert uplink.packument_requests == [("left-pad", None)]
    assert events.counts[("up", MISS)] == 1 and events.counts[("up", HIT)] == 1
    assert mirror.fresh_for("left-pad", again) > 100


async def test_the_fetched_copy_is_stored_with_the_uplinks_validator(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    mirror, packages, _ = await open_mirror(tmp_path, uplink)

    await mirror.packument("left-pad", ("up",))

    stored = orjson.loads((await packages.store.read_packument("left-pad")).data)
    assert stored[MIRROR_MARK]["uplink"] == "up"
    assert stored[MIRROR_MARK]["etag"] == uplink.etag("left-pad")
    assert packages.changes == ["left-pad"]


async def test_a_stale_copy_is_revalidated_with_its_etag_and_a_304_keeps_it(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    mirror, packages, events = await open_mirror(tmp_path, uplink, maxage=0)
    first = await mirror.packument("left-pad", ("up",))

    again = await mirror.packument("left-pad", ("up",))

    assert first is not None and again is not None
    assert uplink.packument_requests == [("left-pad", None), ("left-pad", uplink.etag("left-pad"))]
    assert again.token == first.token  # the 304 rewrote nothing
    assert (await packages.store.read_packument("left-pad")).token == first.token
    assert events.counts[("up", REVALIDATED)] == 1 and events.counts[("up", MISS)] == 1


async def test_after_a_304_the_copy_is_fresh_again_for_maxage(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    other, packages, _ = await open_mirror(tmp_path, uplink, maxage=120)
    await other.packument("left-pad", ("up",))
    # Another instance fetched it long ago: stale by its mark, and unknown to this one.
    stored = await packages.store.read_packument("left-pad")
    doc = orjson.loads(stored.data)
    doc[MIRROR_MARK]["fetched"] = 0
    await packages.store.write_packument("left-pad", orjson.dumps(doc), if_match=stored.token)
    mirror, _, events = await open_mirror(tmp_path, uplink, maxage=120)

    revalidated = await mirror.packument("left-pad", ("up",))
    fresh = await mirror.packument("left-pad", ("up",))

    assert revalidated is not None and fresh is not None
    assert uplink.packument_requests[1:] == [("left-pad", uplink.etag("left-pad"))]
    assert events.counts[("up", REVALIDATED)] == 1 and events.counts[("up", HIT)] == 1
    assert mirror.fresh_for("left-pad", fresh) > 100


async def test_a_changed_upstream_document_replaces_the_stale_copy(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    mirror, packages, events = await open_mirror(tmp_path, uplink, maxage=0)
    await mirror.packument("left-pad", ("up",))
    uplink.publish("left-pad", {
        "1.0.0": tarball_bytes("left-pad", "1.0.0"), "1.1.0": tarball_bytes("left-pad", "1.1.0"),
    })

    current = await mirror.packument("left-pad", ("up",))

    assert current is not None and list(current.doc["versions"]) == ["1.0.0", "1.1.0"]
    stored = orjson.loads((await packages.store.read_packument("left-pad")).data)
    assert list(stored["versions"]) == ["1.0.0", "1.1.0"]
    assert stored[MIRROR_MARK]["etag"] == uplink.etag("left-pad")
    assert events.counts[("up", MISS)] == 2


async def test_a_stale_copy_is_served_when_the_uplink_fails(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    mirror, _, events = await open_mirror(tmp_path, uplink, maxage=0)
    first = await mirror.packument("left-pad", ("up",))
    uplink.failing = True

    stale = await mirror.packument("left-pad", ("up",))

    assert first is not None and stale is not None and stale.token == first.token
    assert events.counts[("up", STALE)] == 1
    assert mirror.stats.counts["up:stale"] == 1


async def test_a_local_document_is_served_without_asking_the_uplink(tmp_path: Path) -> None:
    uplink = FakeUplink()
    uplink.publish("left-pad", {"1.0.0": tarball_bytes("left-pad", "1.0.0")})
    mirror, packages, _ = await open_mirror(tmp_path, uplink)
    local = {"name": "left-pad", "versions": {"9.0.0": {"name": "left-pad", "version": "9.0.0"}}}
    await packages.store.write_packument("left-pad", orjson.dumps(local), if_absent=True)

    current = await mirror.packument("left-pad", ("up",))

    assert current is not None and list(current.doc["versions"]) == ["9.0.0"]
    assert uplink.packument_requests == []
    assert mirror.fresh_for("left-pad", current) == float("inf")
