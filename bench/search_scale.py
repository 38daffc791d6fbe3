"""Search and the web front page with 100,000 packages in the list.

    .venv/bin/python -m bench.search_scale [COUNT] [--requests N]

Fills the package list of an embedded storage (a directory + SQLite) with
COUNT entries (default 100,000) the size a real publish leaves, then starts
`tarhold serve` twice, one after the other: on an empty storage, then on the
filled one. Each gets the same requests (N per endpoint, default 200, with
varied queries: most are asked once), timed one at a time from this process;
the table gives p50 and p99 per endpoint on the filled instance and its RSS
beside the empty one's: the growth is what the package list costs. Last, a
change made by another process on the same storage (`PackageList.record`, as
a publish on another instance does it) is timed until the server finds it.
`bench.run` reports the same as the `search` rows (`BENCH_ROWS=search`).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.procstat import parse_status_kb
from bench.servers import Server, start_tarhold
from registry.domain.package_list import PackageList
from registry.domain.summaries import summary_of
from storage.backends import SQLITE_FILE
from storage.sqlite import SqliteRegistryDatabase

WRITES_AT_ONCE = 500
REQUESTS = 200
SEED = 21
FOUND_WITHIN = 30.0  # seconds the propagation check waits at most


def packument(index: int) -> dict[str, object]:
    name = f"pkg-{index:05d}"
    return {
        "name": name,
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {
            "name": name, "version": "1.0.0", "description": f"package number {index} for the search bench",
            "keywords": ["bench", f"k{index % 100}"], "homepage": "https://example.com",
            "_npmUser": {"name": "alice", "email": "alice@example.com"},
        }},
        "maintainers": [{"name": "alice", "email": "alice@example.com"}],
        "time": {"created": "2026-01-01T00:00:00.000Z", "modified": f"2026-01-01T00:00:{index % 60:02d}.000Z"},
    }


def endpoints(count: int) -> list[tuple[str, Callable[[random.Random], str]]]:
    """(label, a path for a random draw): the requests of each row."""
    return [
        ("/-/v1/search, an exact name", lambda r: f"/-/v1/search?text=pkg-{r.randrange(count):05d}"),
        ("/-/v1/search, a keyword (1%)", lambda r: f"/-/v1/search?text=k{r.randrange(100)}"),
        ("/-/v1/search, every entry matches", lambda r: f"/-/v1/search?text=bench&from={r.randrange(200)}"),
        ("/-/v1/search, two words", lambda r: f"/-/v1/search?text=number+{r.randrange(count)}"),
        ("/-/v1/search, no match", lambda r: f"/-/v1/search?text=nothing{r.randrange(10**9)}"),
        ("/-/web/search", lambda r: f"/-/web/search?q=k{r.randrange(100)}"),
        ("/ (web front page)", lambda r: "/"),
    ]


@dataclass
class Measured:
    count: int
    start_seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    rss_started_mb: float = 0.0
    rss_mb: float = 0.0
    peak_mb: float = 0.0


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return parse_status_kb(status, "VmRSS") / 1024, parse_status_kb(status, "VmHWM") / 1024


async def fill(storage: Path, count: int) -> None:
    """COUNT package list entries, written as a tarhold of before the index left them."""
    storage.mkdir(parents=True, exist_ok=True)
    database = SqliteRegistryDatabase(storage / SQLITE_FILE)
    await database.open()
    try:
        for start in range(0, count, WRITES_AT_ONCE):
            await asyncio.gather(*(
                database.put("PACKAGE", f"pkg-{i:05d}", summary_of(packument(i)))
                for i in range(start, min(count, start + WRITES_AT_ONCE))
            ))
    finally:
        await database.close()


async def requests(server: Server, count: int, repeats: int) -> dict[str, list[float]]:
    draw = random.Random(SEED)
    latencies: dict[str, list[float]] = {}
    async with aiohttp.ClientSession() as session:
        for label, path_of in endpoints(count):
            times = latencies[label] = []
            for _ in range(repeats):
                path = path_of(draw)
                started = time.perf_counter()
                async with session.get(server.url + path) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{path}: {response.status}")
                times.append(time.perf_counter() - started)
    return latencies


def serve(workdir: Path, storage: Path, name: str) -> tuple[Server, float]:
    started = time.perf_counter()
    server = start_tarhold(workdir, storage, None, name=name)
    return server, time.perf_counter() - started


def measure(workdir: Path, storage: Path, name: str, count: int, repeats: int) -> tuple[Measured, Server]:
    """Start `tarhold serve` on `storage` and time the requests; the server keeps running."""
    server, start_seconds = serve(workdir, storage, name)
    try:
        result = Measured(count, start_seconds)
        result.rss_started_mb, _ = memory_mb(server.pid)
        result.latencies = asyncio.run(requests(server, count, repeats))
        result.rss_mb, result.peak_mb = memory_mb(server.pid)
    except BaseException:
        server.stop()
        raise
    return result, server


async def propagation(server: Server, storage: Path) -> float:
    """Seconds from a change written by another process to the server finding it."""
    database = SqliteRegistryDatabase(storage / SQLITE_FILE)
    await database.open()
    try:
        doc = packument(0)
        doc["name"] = name = f"elsewhere-{time.time_ns()}"
        await PackageList(database).record(name, summary_of(doc))
        written = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            while time.perf_counter() - written < FOUND_WITHIN:
                async with session.get(f"{server.url}/-/v1/search?text={name}") as response:
                    body = await response.json()
                if any(o["package"]["name"] == name for o in body["objects"]):
                    return time.perf_counter() - written
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{name} was not found within {FOUND_WITHIN} s")
    finally:
        await database.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


@dataclass
class Report:
    filled: Measured
    empty: Measured
    propagation_seconds: float | None

    @property
    def growth_mb(self) -> float:
        return self.filled.rss_mb - self.empty.rss_mb

    def rows(self) -> list[tuple[str, float, float]]:
        """(label, p50 ms, p99 ms) per endpoint on the filled instance."""
        return [(label, percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000)
                for label, times in self.filled.latencies.items()]

    def text(self) -> str:
        lines = [f"{'endpoint':40s} {'p50 ms':>8s} {'p99 ms':>8s}   ({self.filled.count} packages,"
                 f" {len(next(iter(self.filled.latencies.values())))} requests each)"]
        lines += [f"{label:40s} {p50:8.1f} {p99:8.1f}" for label, p50, p99 in self.rows()]
        lines.append(f"RSS after the requests: {self.filled.rss_mb:.0f} MB with {self.filled.count} packages,"
                     f" {self.empty.rss_mb:.0f} MB with none: growth {self.growth_mb:.0f} MB"
                     f" (peak {self.filled.peak_mb:.0f} MB; {self.filled.rss_started_mb:.0f} MB once started)")
        lines.append(f"start-up (ready to serve): {self.filled.start_seconds:.1f} s with {self.filled.count}"
                     f" packages, {self.empty.start_seconds:.1f} s with none")
        if self.propagation_seconds is not None:
            lines.append(f"a change written by another process found after {self.propagation_seconds:.2f} s")
        return "\n".join(lines)


def run(count: int, repeats: int, workdir: Path) -> Report:
    asyncio.run(fill(workdir / "filled", count))
    empty, server = measure(workdir / "run-empty", workdir / "empty", "tarhold-empty", count, repeats)
    server.stop()
    filled, server = measure(workdir / "run-filled", workdir / "filled", "tarhold-filled", count, repeats)
    try:
        delay = asyncio.run(propagation(server, workdir / "filled"))
    finally:
        server.stop()
    return Report(filled, empty, delay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", nargs="?", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="requests per endpoint")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tarhold-search-") as workdir:
        print(run(args.count, args.requests, Path(workdir)).text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
