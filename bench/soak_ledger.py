"""What the soak run counts and remembers: requests by kind, and which versions were acknowledged.

`Stats` counts every request the soak clients send by kind (statuses,
latencies, unexpected answers); `Ledger` holds, per private package, the
versions whose publish was acknowledged (201) and not unpublished since,
those unpublished with success, and the dist-tags as the clients last set
them. `PackageLock` keeps whole-document writes of one package apart (see
`Ledger`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

# What each kind of request should be answered with; anything else is an anomaly.
EXPECTED: dict[str, frozenset[int]] = {
    "packument": frozenset({200, 304}),
    "tarball": frozenset({200}),
    "packument-private": frozenset({200, 304}),
    "tarball-private": frozenset({200}),
    "publish": frozenset({201}),
    "dist-tag-add": frozenset({201}),
    "dist-tag-rm": frozenset({200}),
    "unpublish-read": frozenset({200}),
    "unpublish-put": frozenset({201}),
    # npm sends this DELETE after the PUT that removed the version; tarhold
    # deletes the tarball with the PUT already, so 404 is the usual answer
    # (npm ignores a 404 there).
    "unpublish-delete-tarball": frozenset({200, 404}),
}
ANOMALIES_KEPT = 100


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Stats:
    """Requests by kind: status counts, latencies (seconds), unexpected answers."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    operations: Counter[str] = field(default_factory=Counter)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    anomaly_count: int = 0
    requests: int = 0

    def record(self, kind: str, status: int, seconds: float) -> None:
        """One answered request (`status` 0: no answer — a socket error or a timeout)."""
        self.statuses.setdefault(kind, Counter())[status] += 1
        self.latencies.setdefault(kind, []).append(seconds)
        self.requests += 1

    def anomaly(self, kind: str, what: str, **detail: Any) -> None:
        """Something that should not happen; the first ANOMALIES_KEPT are kept in full."""
        self.anomaly_count += 1
        if len(self.anomalies) < ANOMALIES_KEPT:
            self.anomalies.append({"kind": kind, "what": what, **detail})

    def server_errors(self) -> int:
        return sum(n for counts in self.statuses.values() for status, n in counts.items() if status >= 500)

    def no_answer(self) -> int:
        return sum(counts.get(0, 0) for counts in self.statuses.values())

    def by_kind(self) -> dict[str, dict[str, Any]]:
        """Per kind: requests, statuses, p50/p99/max latency in milliseconds."""
        table = {}
        for kind in sorted(self.statuses):
            times = self.latencies.get(kind, [])
            table[kind] = {
                "requests": sum(self.statuses[kind].values()),
                "statuses": {str(status): n for status, n in sorted(self.statuses[kind].items())},
                "p50_ms": round(percentile(times, 0.50) * 1000, 1),
                "p99_ms": round(percentile(times, 0.99) * 1000, 1),
                "max_ms": round(max(times, default=0.0) * 1000, 1),
            }
        return table


class PackageLock:
    """Shared for publishes (they merge, so any number may run at once);
    exclusive for dist-tag changes and unpublishes.

    An unpublish PUTs the whole document it read back without one version,
    as the npm CLI does: a publish acknowledged between that read and the PUT
    makes tarhold refuse the PUT with 409 (it would otherwise remove a
    version the client never saw), so it is kept apart here, as one npm
    user would.
    """

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._sharing = 0
        self._exclusive = False

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive)
            self._sharing += 1
        try:
            yield
        finally:
            async with self._changed:
                self._sharing -= 1
                self._changed.notify_all()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive and self._sharing == 0)
            self._exclusive = True
        try:
            yield
        finally:
            async with self._changed:
                self._exclusive = False
                self._changed.notify_all()


@dataclass
class PrivatePackage:
    """One package the soak publishes, and what it was told about it."""

    name: str
    next_patch: int = 0
    acked: dict[str, str] = field(default_factory=dict)  # version -> integrity, live
    unpublished: dict[str, str] = field(default_factory=dict)  # version -> integrity
    unpublishing: set[str] = field(default_factory=set)  # PUT sent, answer not yet read
    uncertain: set[str] = field(default_factory=set)  # publish without an answer
    refused: set[str] = field(default_factory=set)  # publish answered other than 201
    tags: dict[str, str] = field(default_factory=dict)  # dist-tags other than latest
    lock: PackageLock = field(default_factory=PackageLock, repr=False)

    def new_version(self) -> str:
        version = f"1.0.{self.next_patch}"
        self.next_patch += 1
        return version

    def gone_or_going(self, version: str) -> bool:
        """Whether a 404 for this version's tarball is the soak's own doing."""
        return version in self.unpublished or version in self.unpublishing


@dataclass
class Ledger:
    """Per private package: acknowledged, unpublished, uncertain versions and tags."""

    packages: list[PrivatePackage]

    @classmethod
    def of(cls, names: list[str]) -> Ledger:
        return cls([PrivatePackage(name) for name in names])

    def find(self, name: str) -> PrivatePackage | None:
        return next((package for package in self.packages if package.name == name), None)

    def summary(self) -> dict[str, int]:
        return {
            "packages": len(self.packages),
            "acknowledged_live": sum(len(p.acked) for p in self.packages),
            "unpublished": sum(len(p.unpublished) for p in self.packages),
            "uncertain": sum(len(p.uncertain) for p in self.packages),
            "refused": sum(len(p.refused) for p in self.packages),
            "tags": sum(len(p.tags) for p in self.packages),
        }
