"""tarhold's memory while a 1 GB tarball streams in and out (issue 21: +< 50 MB).

    .venv/bin/python -m bench.memory_rows [--size-mb 1024] [--clients 4]

1. writes a tarball of `--size-mb` MB (repeated random blocks; the registry
   checks its sha512, never its contents) to a temporary directory on
   /dev/shm, hashing it on the way, and starts an upstream of its own (this
   module with `--upstream`, its own process) serving a packument of one
   version that names it, and the file itself (sendfile);
2. starts `tarhold serve` (embedded storage in that directory) with that
   upstream as its uplink, fetches the packument through it, and lets it
   settle: the baseline is its VmRSS then;
3. for each phase, resets the kernel's peak (`/proc/<pid>/clear_refs`),
   runs it while sampling VmRSS every 20 ms, and records the peak (VmHWM)
   and the last sample, both minus the baseline:
   - **in**: one GET of the tarball through tarhold while it is not stored:
     fetched from the uplink, spooled, hashed, written to storage and
     streamed to the client at once (`uplinks/tee.py`);
   - **in, N slow clients**: the same for the other version (the same bytes)
     with `--clients` GETs at once, each reading slowly: one fetch, the
     others follow it from the spool while the uplink sends faster than
     they read;
   - **out**: the first GET again, now from storage (a local file: sendfile);
   - **out, N slow clients**: `--clients` such GETs at once, reading slowly
     (the kernel's socket buffers fill; what tarhold keeps per client shows);
4. prints a table, writes it to `bench/results/memory-<time>.json`, and
   removes the directory and every process it started (by PID).

A publish cannot be measured this way: `npm publish` sends the tarball
base64-encoded inside one JSON body, which tarhold (as the npm registry)
reads whole, bounded by `max_body_size`; only mirroring streams.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.servers import Server, start_tarhold
from tests.support.servers import HOST, ROOT, ServerProcess, free_port

NAME = "bench-gigabyte"
VERSIONS = ("1.0.0", "1.0.1")  # the same bytes: one is mirrored to one client, one to several
BLOCK = 1024 * 1024
SAMPLE_SECONDS = 0.02
SETTLE_SECONDS = 3.0
SLOW_READ = 64 * 1024  # bytes a slow client reads at a time
SLOW_PAUSE = 0.002  # seconds it waits between reads (~30 MB/s)
RESULTS = ROOT / "bench" / "results"
TARGET_MB = 50


@dataclass
class Phase:
    """One phase's extra memory over the baseline, in MB."""

    name: str
    seconds: float
    peak_mb: float  # VmHWM during the phase - baseline
    end_mb: float  # VmRSS right after it - baseline
    bytes_read: int


# -- the tarball and its upstream ---------------------------------------------


def write_tarball(path: Path, size_mb: int) -> str:
    """`size_mb` MB of repeated random blocks at `path`; returns its npm integrity (sha512)."""
    block = os.urandom(BLOCK)
    digest = hashlib.sha512()
    with open(path, "wb") as out:
        for index in range(size_mb):
            # Each block differs a little, so the file is not one block repeated.
            piece = index.to_bytes(8, "big") + block[8:]
            digest.update(piece)
            out.write(piece)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def upstream_app(tarball: Path, integrity: str, port: int) -> web.Application:
    """A registry of one package, one version: the packument, and the tarball from its file."""
    base = f"http://{HOST}:{port}"
    moment = "2026-01-01T00:00:00.000Z"
    packument = {
        "_id": NAME, "name": NAME, "dist-tags": {"latest": VERSIONS[-1]},
        "versions": {version: {
            "name": NAME, "version": version,
            "dist": {"tarball": f"{base}/{NAME}/-/{filename(version)}", "integrity": integrity},
        } for version in VERSIONS},
        "time": {"created": moment, "modified": moment, **{version: moment for version in VERSIONS}},
    }

    async def ping(_: web.Request) -> web.Response:
        return web.json_response({})

    async def document(_: web.Request) -> web.Response:
        return web.json_response(packument)

    async def file(_: web.Request) -> web.FileResponse:
        return web.FileResponse(tarball, headers={"Content-Type": "application/octet-stream"})

    app = web.Application()
    app.router.add_get("/-/ping", ping)
    app.router.add_get(f"/{NAME}", document)
    for version in VERSIONS:
        app.router.add_get(f"/{NAME}/-/{filename(version)}", file)
    return app


def filename(version: str) -> str:
    return f"{NAME}-{version}.tgz"


def start_upstream(workdir: Path, tarball: Path, integrity: str) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.memory_rows", "--upstream", str(port), "--tarball", str(tarball),
            "--integrity", integrity]
    process = ServerProcess.spawn("upstream", argv, cwd=ROOT, log_dir=workdir)
    process.wait_until_ready(lambda: _get(f"http://{HOST}:{port}/-/ping"), timeout=30, what="/-/ping")
    return Server("upstream", process, port)


def _get(url: str) -> None:
    asyncio.run(_fetch(url))


async def _fetch(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        response.raise_for_status()
        await response.read()


# -- measuring ------------------------------------------------------------------


def status_mb(pid: int, key: str) -> float:
    """A `Key: n kB` line of /proc/<pid>/status, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current VmRSS (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class Sampler:
    """VmRSS of `pid` every SAMPLE_SECONDS in a thread, while a phase runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.samples.append(status_mb(self.pid, "VmRSS"))

    def __enter__(self) -> Sampler:
        reset_peak(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def download(url: str, *, slow: bool = False) -> int:
    """GET `url` to nowhere; the bytes read. `slow`: a small read, then a pause, each time."""
    total = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        async with session.get(url) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_chunked(SLOW_READ if slow else BLOCK):
                total += len(chunk)
                if slow:
                    await asyncio.sleep(SLOW_PAUSE)
    return total


def run_phase(name: str, pid: int, baseline: float, urls: list[str], *, slow: bool = False) -> Phase:
    started = time.monotonic()
    with Sampler(pid):

        async def everything() -> list[int]:
            return await asyncio.gather(*(download(url, slow=slow) for url in urls))

        read = sum(asyncio.run(everything()))
        peak = status_mb(pid, "VmHWM")
    end = status_mb(pid, "VmRSS")
    return Phase(name, round(time.monotonic() - started, 1), round(peak - baseline, 1), round(end - baseline, 1),
                 read)


def measure(workdir: Path, size_mb: int, clients: int) -> dict[str, object]:
    tarball = workdir / "tarball.tgz"
    print(f"writing a {size_mb} MB tarball to {tarball}", flush=True)
    integrity = write_tarball(tarball, size_mb)
    upstream = start_upstream(workdir / "upstream", tarball, integrity)
    tarhold: Server | None = None
    try:
        tarhold = start_tarhold(workdir / "tarhold", workdir / "tarhold" / "storage", upstream.url)
        _get(f"{tarhold.url}/{NAME}")
        time.sleep(SETTLE_SECONDS)
        baseline = status_mb(tarhold.pid, "VmRSS")
        first, other = (f"{tarhold.url}/{NAME}/-/{filename(version)}" for version in VERSIONS)
        phases = [
            run_phase("in: mirrored from the uplink, streamed to a client", tarhold.pid, baseline, [first]),
            run_phase(f"in: mirrored, {clients} slow clients at once", tarhold.pid, baseline, [other] * clients,
                      slow=True),
            run_phase("out: from storage (sendfile)", tarhold.pid, baseline, [first]),
            run_phase(f"out: from storage, {clients} slow clients at once", tarhold.pid, baseline,
                      [first] * clients, slow=True),
        ]
        for phase in phases:
            if phase.bytes_read != size_mb * BLOCK * (clients if "clients" in phase.name else 1):
                raise RuntimeError(f"{phase.name}: read {phase.bytes_read} bytes")
        return {"size_mb": size_mb, "clients": clients, "baseline_mb": round(baseline, 1),
                "phases": [asdict(phase) for phase in phases]}
    finally:
        if tarhold is not None:
            tarhold.stop()
        upstream.stop()


def report(result: dict[str, object]) -> str:
    lines = [f"tarhold extra memory while a {result['size_mb']} MB tarball streams (baseline VmRSS "
             f"{result['baseline_mb']} MB; target +<{TARGET_MB} MB)",
             f"{'phase':58s} {'seconds':>8s} {'peak +MB':>9s} {'after +MB':>10s}  ok"]
    for phase in result["phases"]:  # type: ignore[attr-defined]
        ok = "ok" if phase["peak_mb"] < TARGET_MB else "MISS"
        lines.append(f"{phase['name']:58s} {phase['seconds']:8.1f} {phase['peak_mb']:9.1f} "
                     f"{phase['end_mb']:10.1f}  {ok}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)  # the upstream's own process: its port
    parser.add_argument("--tarball", help=argparse.SUPPRESS)
    parser.add_argument("--integrity", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.upstream:
        web.run_app(upstream_app(Path(args.tarball), args.integrity, args.upstream), host=HOST, port=args.upstream,
                    print=None)
        return 0
    shm = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="tarhold-memory-", dir=shm if shm.is_dir() else None))
    try:
        result = measure(workdir, args.size_mb, args.clients)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(result))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"memory-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"results: {path}")
    return 0 if all(p["peak_mb"] < TARGET_MB for p in result["phases"]) else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
