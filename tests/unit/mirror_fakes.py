"""A fake uplink and a package store for the mirror's unit tests: no HTTP, the
fs package store in a temporary directory, every call the mirror makes recorded."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from registry.domain.caches import TarballCache
from storage.base import NotFound, PackageStore
from storage.fs import FsPackageStore
from uplinks.base import FetchedPackument, PackageNotFound, UplinkError
from uplinks.config import UplinkConfig
from uplinks.documents import Current
from uplinks.events import UplinkEvents
from uplinks.mirror import Mirror
from uplinks.prefetch import ProxiesFor

UPSTREAM = "http://upstream.test"


def tarball_bytes(name: str, version: str) -> bytes:
    """Stand-in tarball bytes, distinct per version (the mirror never unpacks them)."""
    return f"tarball of {name}@{version} ".encode() * 500


def packument(name: str, versions: Mapping[str, bytes]) -> dict[str, Any]:
    """An upstream packument whose dist declares the integrity and shasum of each tarball."""
    short = name.split("/")[-1]
    return {
        "name": name,
        "dist-tags": {"latest": list(versions)[-1]},
        "versions": {
            version: {
                "name": name, "version": version,
                "dist": {
                    "tarball": f"{UPSTREAM}/{name}/-/{short}-{version}.tgz",
                    "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
                    "shasum": hashlib.sha1(data).hexdigest(),
                },
            }
            for version, data in versions.items()
        },
    }


class FakeTarball:
    """An open upstream tarball; `gate`, when given, holds every chunk until it is set."""

    def __init__(self, data: bytes, size: int | None, gate: asyncio.Event | None) -> None:
        self.data = data
        self.size = size
        self.gate = gate

    async def chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), 1024):
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            yield self.data[start:start + 1024]

    async def aclose(self) -> None:
        """Nothing to release."""


class FakeUplink:
    """An `Uplink` answering from dicts; records what it was asked."""

    name = "up"

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.revisions: Counter[str] = Counter()  # bumped by publish(): a new ETag
        self.tarballs: dict[str, bytes] = {}  # url -> bytes served
        self.declared_sizes: dict[str, int] = {}  # url -> Content-Length to claim instead
        self.packument_requests: list[tuple[str, str | None]] = []  # (name, If-None-Match)
        self.tarball_requests: list[str] = []
        self.delay = 0.0  # seconds each packument answer takes
        self.failing = False
        self.gate: asyncio.Event | None = None

    def publish(self, name: str, versions: Mapping[str, bytes]) -> dict[str, Any]:
        """Serve `name` with these versions (a new document, so a new ETag)."""
        doc = packument(name, versions)
        self.documents[name] = doc
        self.revisions[name] += 1
        for manifest in doc["versions"].values():
            self.tarballs[manifest["dist"]["tarball"]] = versions[manifest["version"]]
        return doc

    def etag(self, name: str) -> str:
        return f'"{name}-{self.revisions[name]}"'

    async def fetch_packument(
        self, name: str, *, etag: str | None = None, last_modified: str | None = None,
        via: str = "",
    ) -> FetchedPackument:
        self.packument_requests.append((name, etag))
        await asyncio.sleep(self.delay)
        if self.failing:
            raise UplinkError(f"{self.name} unreachable for {name}")
        if name not in self.documents:
            raise PackageNotFound(f"{self.name} has no package {name}")
        if etag == self.etag(name):
            return FetchedPackument(None, etag, last_modified)
        return FetchedPackument(orjson.dumps(self.documents[name]), self.etag(name))

    def tarball_url(self, url: str, name: str, filename: str) -> str:
        return url or f"{UPSTREAM}/{name}/-/{filename}"

    async def open_tarball(self, url: str, *, via: str = "") -> FakeTarball:
        self.tarball_requests.append(url)
        if self.failing:
            raise UplinkError(f"{self.name} unreachable for {url}")
        if url not in self.tarballs:
            raise PackageNotFound(f"{self.name} has no tarball at {url}")
        data = self.tarballs[url]
        return FakeTarball(data, self.declared_sizes.get(url, len(data)), self.gate)

    async def forward(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes, str]:
        return 404, b"{}", "application/json"

    async def close(self) -> None:
        """Nothing to release."""


class StorePackages:
    """The registry's packages as the mirror needs them (`MirroredPackages`), on one store."""

    def __init__(self, store: PackageStore, tarballs: TarballCache | None = None) -> None:
        self._store = store
        self.changes: list[str] = []
        # No tarball held in memory unless a test gives a cache.
        self.tarballs = tarballs or TarballCache(0, 0, 1.0)

    @property
    def store(self) -> PackageStore:
        return self._store

    async def read(self, name: str, *, cached: bool = False) -> Current | None:
        try:
            stored = await self._store.read_packument(name)
        except NotFound:
            return None
        return Current(orjson.loads(stored.data), stored.token, len(stored.data))

    async def changed(self, name: str, current: Current, old: dict[str, Any] | None) -> None:
        self.changes.append(name)


class RecordingEvents(UplinkEvents):
    """Every event the mirror reports, summed by (uplink, event)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.circuit: dict[str, str] = {}

    def count(self, uplink: str, event: str, amount: int = 1) -> None:
        self.counts[(uplink, event)] += amount

    def circuit_changed(self, uplink: str, state: str) -> None:
        self.circuit[uplink] = state


async def open_mirror(
    root: Path, uplink: FakeUplink, proxies_for: ProxiesFor | None = None, **options: Any
) -> tuple[Mirror, StorePackages, RecordingEvents]:
    """A mirror over `uplink` (named "up") on an fs store under `root`; `options` go to UplinkConfig;
    `proxies_for` turns prefetch on, as the registry does."""
    store = FsPackageStore(root)
    await store.open()
    packages = StorePackages(store)
    events = RecordingEvents()
    mirror = Mirror(
        packages, {"up": UplinkConfig(name="up", url=UPSTREAM, **options)}, events=events, proxies_for=proxies_for
    )
    mirror.uplinks["up"] = uplink  # instead of start(): no session, no HTTP
    return mirror, packages, events


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])
