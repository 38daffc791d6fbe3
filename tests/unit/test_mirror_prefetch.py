"""Prefetch: a packument fetched for a client brings the packuments its latest
version depends on, in the background, within bounds, never at a client's cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from storage.fs import FsPackageStore
from tests.unit.mirror_fakes import (
    UPSTREAM,
    FakeUplink,
    RecordingEvents,
    StorePackages,
    open_mirror,
    tarball_bytes,
)
from uplinks import prefetch
from uplinks.base import FetchedPackument, UplinkError
from uplinks.config import UplinkConfig
from uplinks.errors import UplinkBadGateway, UplinkUnavailable
from uplinks.events import HIT, MISS, PREFETCH_SKIPPED, PREFETCHED
from uplinks.mirror import Mirror
from uplinks.prefetch import likely_dependencies, registry_name


def everything(name: str) -> tuple[str, ...]:
    """Every name is proxied to the uplink "up", as a `**` rule with `proxy: up` says."""
    return ("up",)


class TreeUplink(FakeUplink):
    """A FakeUplink whose packages have dependencies, with slow or broken names, that
    remembers how many packument fetches ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self.delays: dict[str, float] = {}
        self.broken: set[str] = set()
        self.running = 0
        self.most_running = 0

    def add(self, name: str, dependencies: Mapping[str, str] = (), **fields: Mapping[str, str]) -> None:
        """`name` at 1.0.0 (no dependencies) and 2.0.0, `latest`, with these dependencies and fields."""
        doc = self.publish(name, {v: tarball_bytes(name, v) for v in ("1.0.0", "2.0.0")})
        doc["versions"]["2.0.0"].update(dependencies=dict(dependencies), **fields)

    async def fetch_packument(
        self, name: str, *, etag: str | None = None, last_modified: str | None = None, via: str = "",
    ) -> FetchedPackument:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delays.get(name, 0.0))
            if name in self.broken:
                self.packument_requests.append((name, etag))
                raise UplinkError(f"{name} is broken")
            return await super().fetch_packument(name, etag=etag, last_modified=last_modified, via=via)
        finally:
            self.running -= 1

    def asked(self) -> list[str]:
        return sorted(name for name, _ in self.packument_requests)


async def settle(mirror: Mirror, timeout: float = 5.0) -> None:
    """Until no prefetch is queued or running."""
    assert mirror.prefetch is not None
    deadline = time.monotonic() + timeout
    while mirror.prefetch.pending():
        assert time.monotonic() < deadline, "prefetch did not settle"
        await asyncio.sleep(0.005)


async def test_a_fetched_packument_prefetches_its_dependencies_to_the_depth(tmp_path: Path) -> None:
    uplink = TreeUplink()
    uplink.add("app", {"lib": "^2.0.0", "util": "~2.0.0"})
    uplink.add("lib", {"core": "^2.0.0"})
    uplink.add("util")
    uplink.add("core", {"deep": "^2.0.0"})
    uplink.add("deep")
    mirror, _, events = await open_mirror(tmp_path, uplink, everything, prefetch_depth=2)

    assert await mirror.packument("app", ("up",)) is not None
    await settle(mirror)

    assert uplink.asked() == ["app", "core", "lib", "util"]  # deep is a third level down
    assert events.counts[("up", MISS)] == 1 and events.counts[("up", PREFETCHED)] == 3
    for name in ("lib", "util", "core"):  # fresh now: a client waits for no uplink
        assert await mirror.packument(name, ("up",)) is not None
    assert uplink.asked() == ["app", "core", "lib", "util"]
    assert events.counts[("up", HIT)] == 3 and events.counts[("up", MISS)] == 1


def test_only_the_install_dependencies_of_the_likely_version_are_prefetched() -> None:
    doc: dict[str, Any] = {
        "name": "app",
        "dist-tags": {"latest": "2.0.0"},
        "versions": {
            "1.0.0": {"dependencies": {"old": "^1.0.0"}},
            "2.0.0": {
                "dependencies": {
                    "lib": "^2.0.0", "alias": "npm:@scope/real@^1.0.0", "plain-alias": "npm:other",
                    "git": "github:user/repo", "url": "https://example.com/x.tgz", "local": "file:../x",
                    "work": "workspace:*", "app": "^2.0.0", "bad name": "1.0.0",
                },
                "optionalDependencies": {"fsevents": "^2.3.0", "lib": "^2.0.0"},
                "devDependencies": {"jest": "^29.0.0"},
                "peerDependencies": {"react": "^18.0.0"},
            },
            "3.0.0-beta.1": {"dependencies": {"next": "1.0.0"}},
        },
    }
    assert likely_dependencies(doc) == ["lib", "@scope/real", "other", "fsevents"]
    del doc["dist-tags"]  # no latest: the highest version's
    assert likely_dependencies(doc) == ["next"]
    for hostile in ({"versions": []}, {"versions": {"1.0.0": "x"}}, {"versions": {"1.0.0": {"dependencies": 3}}}, {}):
        assert likely_dependencies(hostile) == []
    assert registry_name("x", 5) is None and registry_name(3, "1.0.0") is None
    assert registry_name("x" * 215, "1.0.0") is None


async def test_a_client_and_a_prefetch_asking_for_one_name_make_one_fetch(tmp_path: Path) -> None:
    uplink = TreeUplink()
    uplink.add("app", {"lib": "^2.0.0"})
    uplink.add("lib")
    uplink.add("other", {"lib": "^2.0.0"})
    uplink.delays["lib"] = 0.1
    mirror, _, _ = await open_mirror(tmp_path, uplink, everything)

    await mirror.packument("app", ("up",))
    while "lib" not in uplink.asked():  # the prefetch of lib is under way
        await asyncio.sleep(0.005)
    assert await mirror.packument("lib", ("up",)) is not None  # the client joins it
    await settle(mirror)
    assert uplink.asked() == ["app", "lib"]

    # The other way round: a client's fetch is running when the prefetch asks.
    uplink.add("late", {"slow": "^2.0.0"})
    uplink.add("slow")
    uplink.delays["slow"] = 0.1
    client = asyncio.ensure_future(mirror.packument("slow", ("up",)))
    await mirror.packument("late", ("up",))
    await client
    await settle(mirror)
    assert uplink.asked().count("slow") == 1


async def test_nothing_is_prefetched_from_an_uplink_whose_circuit_is_open(tmp_path: Path) -> None:
    up, down = TreeUplink(), TreeUplink()
    down.name = "down"
    up.add("app", {"lib": "^2.0.0", "down-lib": "^2.0.0", "down-util": "^2.0.0"})
    up.add("lib")
    down.add("down-lib")
    down.broken.add("down-flaky")
    store = FsPackageStore(tmp_path)
    await store.open()
    configs = {
        "up": UplinkConfig(name="up", url=UPSTREAM), "down": UplinkConfig(name="down", url=UPSTREAM, max_fails=1),
    }

    def proxies(name: str) -> tuple[str, ...]:
        return ("down",) if name.startswith("down-") else ("up",)

    events = RecordingEvents()
    mirror = Mirror(StorePackages(store), configs, events=events, proxies_for=proxies)
    mirror.uplinks.update(up=up, down=down)
    with pytest.raises(UplinkBadGateway):
        await mirror.packument("down-flaky", ("down",))
    assert mirror.breakers["down"].state == "open"

    assert await mirror.packument("app", ("up",)) is not None
    await settle(mirror)
    assert up.asked() == ["app", "lib"] and down.asked() == ["down-flaky"]
    assert events.counts[("down", PREFETCH_SKIPPED)] == 2 and events.counts[("up", PREFETCHED)] == 1


async def test_a_failing_prefetch_stops_the_rest_and_never_reaches_the_client(tmp_path: Path) -> None:
    uplink = TreeUplink()
    uplink.add("app", {"broken": "^2.0.0", "b": "^2.0.0", "c": "^2.0.0", "d": "^2.0.0"})
    uplink.add("stuck-app", {"stuck": "^2.0.0"})
    uplink.broken.add("broken")
    mirror, _, events = await open_mirror(tmp_path, uplink, everything, prefetch_concurrency=1)

    assert await mirror.packument("app", ("up",)) is not None
    await settle(mirror)
    assert uplink.asked() == ["app", "broken"]  # then the uplink is not calm: b, c and d dropped
    assert events.counts[("up", PREFETCH_SKIPPED)] == 3

    # A success calms it again; a prefetch that stalls costs the client nothing...
    uplink.delays["stuck"] = 30.0
    started = time.monotonic()
    assert await mirror.packument("stuck-app", ("up",)) is not None
    while uplink.running == 0:  # the prefetch of stuck is under way
        await asyncio.sleep(0.005)
    assert await mirror.packument("stuck-app", ("up",)) is not None
    assert time.monotonic() - started < 1.0
    # ...and closing the mirror cancels it.
    assert mirror.prefetch is not None and mirror.prefetch.pending() == 1
    await mirror.close()
    await settle(mirror, timeout=1.0)


async def test_a_client_joining_a_refused_prefetch_fetches_as_itself(tmp_path: Path) -> None:
    # The race CI met: a dependency's prefetch, started as the uplink stopped being calm,
    # is refused by the breaker (a prefetch goes only while calm); a client asking for that
    # name at that moment joined the refusal and got a 503, though a client may fetch.
    uplink = TreeUplink()
    uplink.add("lib")
    mirror, packages, _ = await open_mirror(tmp_path, uplink, everything)
    breaker = mirror.breakers["up"]
    attempt = breaker.begin()
    assert attempt is not None
    breaker.end(attempt, False)  # one failure: closed, but not calm
    read = packages.read

    async def client_reads_once_the_prefetch_is_in_flight(name: str, *, cached: bool = False) -> Any:
        if asyncio.current_task() is not client:
            return await read(name, cached=cached)
        # Nothing is stored: the client's read answers None as soon as the prefetch's
        # fetch is in flight (within the loop turn it is made, before it can end).
        deadline = time.monotonic() + 5
        while name not in mirror._inflight:
            assert time.monotonic() < deadline, "the prefetch never started"
            await asyncio.sleep(0)
        return None

    packages.read = client_reads_once_the_prefetch_is_in_flight  # type: ignore[method-assign]
    client = asyncio.ensure_future(mirror.packument("lib", ("up",)))
    prefetch = asyncio.ensure_future(mirror.lookup("lib", ("up",), depth=1))
    assert (await client) is not None
    assert uplink.asked() == ["lib"]
    with pytest.raises(UplinkUnavailable):
        await prefetch  # the prefetch itself stays refused


async def test_prefetch_off_unproxied_and_local_names_fetch_nothing(tmp_path: Path) -> None:
    uplink = TreeUplink()
    uplink.add("app", {"@private/secret": "^1.0.0", "published-here": "^1.0.0", "lib": "^2.0.0"})
    uplink.add("lib")
    uplink.add("published-here")
    store = FsPackageStore(tmp_path)
    await store.open()
    local = {"name": "published-here", "versions": {"1.0.0": {}}, "dist-tags": {"latest": "1.0.0"}}
    await store.write_packument("published-here", orjson.dumps(local), if_absent=True)

    def proxies(name: str) -> tuple[str, ...]:
        return () if name.startswith("@private/") else ("up",)

    mirror, _, _ = await open_mirror(tmp_path, uplink, proxies)
    await mirror.packument("app", ("up",))
    await settle(mirror)
    assert uplink.asked() == ["app", "lib"]

    off_uplink = TreeUplink()
    off_uplink.add("app", {"lib": "^2.0.0"})
    off, _, _ = await open_mirror(tmp_path / "off", off_uplink, everything, prefetch=False)
    await off.packument("app", ("up",))
    await settle(off)
    assert off_uplink.asked() == ["app"]


async def test_prefetch_is_bounded_in_count_and_concurrency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefetch, "QUEUE_LIMIT", 10)
    uplink = TreeUplink()
    names = [f"dep-{index}" for index in range(30)]
    uplink.add("app", {name: "^2.0.0" for name in names})
    for name in names:
        uplink.add(name)
        uplink.delays[name] = 0.01
    mirror, _, events = await open_mirror(tmp_path, uplink, everything, prefetch_concurrency=3)

    await mirror.packument("app", ("up",))
    await settle(mirror)

    assert uplink.asked() == sorted(["app", *names[:10]])
    assert uplink.most_running == 3
    assert events.counts[("up", PREFETCHED)] == 10 and events.counts[("up", PREFETCH_SKIPPED)] == 20
    # Offered again within RECENT_SECONDS: not queued again (they are fresh anyway).
    await mirror.packument("app", ("up",))
    await settle(mirror)
    assert len(uplink.packument_requests) == 11
