"""What `make bench` measures: its knobs (environment variables) and its HTTP rows."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import corpus as C
from bench.report import Check

RESULTS = Path(__file__).resolve().parent / "results"

ABBREVIATED = "application/vnd.npm.install-v1+json"
# A registry across a network answers tens of milliseconds late, not in the
# tenth of a millisecond of loopback: what a cold install costs is mostly
# those round trips, and what a mirror can do about them is what the cold
# rows compare. 40 ms: a CDN-fronted public registry from a cloud CI runner.
UPSTREAM_LATENCY_MS = 40
# Issue 21: each packument row (full, abbreviated, abbreviated + gzip) at least
# 90% of bare aiohttp serving the same bytes from memory.
REF_TARGET = 0.9
GZIP_MAGIC = b"\x1f\x8b"


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None or value == "" else value not in ("0", "false", "no")


@dataclass(frozen=True)
class Settings:
    """The knobs (environment variables, see README.md)."""

    quick: bool
    duration: float
    runs: int
    connections: int
    tree_size: int
    huge_versions: int
    publish_count: int
    verdaccio: bool
    npm: bool
    profile: bool
    s3: bool
    upstream_latency: float = 0.0  # seconds the fake upstream waits before each answer

    @classmethod
    def from_env(cls) -> Settings:
        quick = env_flag("BENCH_QUICK")
        return cls(
            quick=quick,
            duration=float(os.environ.get("BENCH_DURATION") or (3 if quick else 10)),
            runs=int(os.environ.get("BENCH_RUNS") or (1 if quick else 3)),
            connections=int(os.environ.get("BENCH_CONNECTIONS") or 16),
            tree_size=int(os.environ.get("BENCH_TREE_SIZE") or C.TREE_SIZE),
            huge_versions=int(os.environ.get("BENCH_HUGE_VERSIONS") or C.HUGE_VERSIONS),
            publish_count=int(os.environ.get("BENCH_PUBLISH_COUNT") or 200),
            verdaccio=env_flag("BENCH_VERDACCIO", True),
            npm=env_flag("BENCH_NPM", True),
            profile=env_flag("BENCH_PROFILE", True),
            s3=env_flag("BENCH_S3", True),
            upstream_latency=float(os.environ.get("BENCH_UPSTREAM_LATENCY_MS") or UPSTREAM_LATENCY_MS) / 1000,
        )


@dataclass(frozen=True)
class Scenario:
    """One HTTP row: GET `path` with `headers`, against each server."""

    key: str
    label: str
    path: str
    headers: dict[str, str]
    unit: str  # "req/s" or "MB/s"
    reference_file: str | None  # the file the references serve, or None
    reference_kind: str  # "memory" or "files"
    checks: list[Check] = field(default_factory=list)
    cpu_checks: list[Check] = field(default_factory=list)
    connections: int | None = None  # instead of BENCH_CONNECTIONS
    min_duration: float = 0.0  # at least this many seconds per run


SCENARIOS = [
    Scenario("full", "full packument ~750 KB", f"/{C.FULL}", {"Accept": "application/json"}, "req/s",
             "full.json", "memory", [Check("vs_min", 50), Check("ref_min", REF_TARGET)], [Check("max", 0.5)]),
    Scenario("abbreviated", "abbreviated packument ~430 KB", f"/{C.FULL}", {"Accept": ABBREVIATED}, "req/s",
             "abbreviated.json", "memory", [Check("ref_min", REF_TARGET)]),
    # The reference serves the exact gzip bytes tarhold sent (bench.reference: `.gz`).
    Scenario("abbreviated_gzip", "abbreviated + gzip", f"/{C.FULL}",
             {"Accept": ABBREVIATED, "Accept-Encoding": "gzip"}, "req/s", "abbreviated.json.gz", "memory",
             [Check("ref_min", REF_TARGET)]),
    # Few connections and long enough that Verdaccio completes some: 16
    # clients of a 20 MB document would only measure queueing.
    Scenario("huge", "packument ~20 MB", f"/{C.HUGE}", {"Accept": "application/json"}, "req/s", "huge.json",
             "memory", [Check("vs_min", 100)], connections=4, min_duration=8.0),
    Scenario("small_tarball", "small tarball ~3 KB", C.tarball_path(C.SMALL), {}, "req/s", "small.tgz",
             "memory", [Check("vs_min", 5), Check("ref_min", 0.8)]),
    Scenario("large_tarball", "large tarball ~4 MB", C.tarball_path(C.LARGE), {}, "MB/s", "large.tgz", "files",
             [Check("ref_min", 0.6)]),
]


# What the S3 + DynamoDB variant repeats: packuments (storage reads behind
# tarhold's caches) and both tarball sizes (streamed from S3 on every GET).
S3_SCENARIOS = ("full", "small_tarball", "large_tarball")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fetch(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return response.read()


def asks_gzip(headers: dict[str, str]) -> bool:
    return any(key.lower() == "accept-encoding" and "gzip" in value for key, value in headers.items())


def check_encoding(headers: dict[str, str], encoding: str | None, body: bytes) -> None:
    """Raise unless the answer is encoded as asked: gzip bytes with `Content-Encoding: gzip`
    when the request accepted gzip, no encoding otherwise (a reference file must hold the
    exact bytes the client got).
    """
    if asks_gzip(headers):
        if encoding != "gzip" or not body.startswith(GZIP_MAGIC):
            raise RuntimeError(f"gzip asked for, got Content-Encoding {encoding!r} and {body[:2]!r}...")
    elif encoding:
        raise RuntimeError(f"Content-Encoding {encoding!r} sent unasked")


def fetch_as_served(url: str, headers: dict[str, str]) -> bytes:
    """The body exactly as sent, checked by `check_encoding`: urllib decodes no
    Content-Encoding, so a gzip answer stays the compressed bytes on the wire.
    """
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
        encoding = response.headers.get("Content-Encoding")
    check_encoding(headers, encoding, body)
    return body
