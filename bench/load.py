"""HTTP load: wrk when installed, else a small aiohttp load generator
(`python -m bench.load URL ...`, in its own process) with the same output.

Load goes to 127.0.0.1 only and lasts `duration` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    bytes_per_second: float
    errors: int  # socket errors, timeouts and non-2xx/3xx answers

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.bytes_per_second / 1024**2


def parse_size(text: str) -> float:
    """wrk's `12.34MB` → bytes."""
    match = re.fullmatch(r"([\d.]+)\s*([KMGT]?B)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk size: {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(output: str) -> LoadResult:
    """The numbers of wrk's plain-text summary."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    transfer = re.search(r"Transfer/sec:\s*(\S+)", output)
    if done is None or transfer is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return LoadResult(int(done.group(1)), float(done.group(2)) * scale, parse_size(transfer.group(1)), errors)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_load(url: str, duration: float, connections: int, headers: dict[str, str]) -> LoadResult:
    """`duration` seconds of keep-alive GETs of `url` from `connections` connections."""
    if urlsplit(url).hostname != "127.0.0.1":
        raise ValueError(f"load goes to 127.0.0.1 only, not {url}")
    if wrk_available():
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "20s"]
        for key, value in headers.items():
            argv += ["-H", f"{key}: {value}"]
        done = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 60, check=True)
        return parse_wrk(done.stdout)
    argv = [sys.executable, "-m", "bench.load", url, "--duration", str(duration), "--connections", str(connections)]
    argv += ["--headers", json.dumps(headers)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True, cwd=ROOT)
    return LoadResult(**json.loads(done.stdout))


# -- the fallback generator -------------------------------------------------------


async def _generate(url: str, duration: float, connections: int, headers: dict[str, str]) -> LoadResult:
    counts = {"requests": 0, "bytes": 0, "errors": 0}
    deadline = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    async with session.get(url, headers=headers) as response:
                        async for chunk in response.content.iter_any():
                            counts["bytes"] += len(chunk)
                        counts["requests"] += 1
                        counts["errors"] += response.status >= 400
                except (aiohttp.ClientError, TimeoutError):
                    counts["errors"] += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        seconds = time.monotonic() - started
    return LoadResult(counts["requests"], seconds, counts["bytes"] / seconds, counts["errors"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a small load generator when wrk is not installed")
    parser.add_argument("url")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--headers", default="{}")
    args = parser.parse_args(argv)
    result = asyncio.run(_generate(args.url, args.duration, args.connections, json.loads(args.headers)))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
