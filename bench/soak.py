"""A soak run: minutes of mixed traffic against one `tarhold serve`, then verdicts.

    .venv/bin/python -m bench.soak --minutes 10 --backend embedded|aws|both

Per backend it starts the fake upstream (`bench.soak_upstream`, generated
packages), tarhold (embedded: a directory + SQLite on tmpfs; aws: a moto
server, provisioned as `tarhold init` does) with that upstream as its uplink,
registers a user, then runs `--clients` npm-like clients
(`bench.soak_traffic`) for `--minutes`, samples the server's RSS and open
fds every `--sample-every` seconds, runs the real `npm install` now and then
when npm is on PATH, and at the end reads every acknowledged version back
(`bench.soak_verify`). Verdicts are defined in `bench.soak_report`. Writes
`bench/results/soak-<backend>-<time>.json`; exits 1 when a verdict fails.

Every process it starts listens on 127.0.0.1 only and is stopped by its own
PID at the end, on Ctrl-C and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import IO, Any

import aiohttp
import yaml

from bench.procstat import tree_peak_rss_mb
from bench.publish import add_user
from bench.scenarios import RESULTS
from bench.servers import TARHOLD, Server
from bench.soak_ledger import Ledger, Stats
from bench.soak_report import (
    WARMUP_FRACTION,
    Sample,
    fd_verdict,
    log_problems,
    rss_verdict,
    sample_until,
    samples_json,
    server_statuses,
    summary,
    verdicts,
)
from bench.soak_traffic import Client, Mix
from bench.soak_upstream import TREES
from bench.soak_verify import verify_ledger
from tests.support.aws_servers import provision_aws, start_moto
from tests.support.servers import HOST, ROOT, ServerProcess, free_port

PRIVATE = [f"@soak/pkg-{index}" for index in range(8)] + [f"soak-private-{index}" for index in range(8)]
NPM_TIMEOUT = 300.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)


def ping(url: str) -> None:
    with urllib.request.urlopen(url + "/-/ping", timeout=5) as response:
        response.read()


def start_upstream(workdir: Path, release_every: float) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.soak_upstream", "--port", str(port), "--release-every", str(release_every)]
    process = ServerProcess.spawn("upstream", argv, cwd=ROOT, log_dir=workdir)
    process.wait_until_ready(lambda: ping(f"http://{HOST}:{port}"), timeout=120, what="/-/ping")
    return Server("upstream", process, port)


def start_tarhold(workdir: Path, upstream: str, store_section: dict[str, Any] | None) -> Server:
    """`tarhold serve` with the fake upstream as its one uplink (maxage 30s: it keeps revalidating)."""
    port = free_port()
    rule = {"access": "$all", "publish": "$authenticated", "unpublish": "$authenticated", "proxy": "upstream"}
    config: dict[str, Any] = {
        "listen": f"{HOST}:{port}",
        "storage": str(workdir / "storage"),
        "log": {"level": "warn", "format": "pretty"},
        "auth": {"max_users": 100},
        "uplinks": {"upstream": {"url": upstream, "maxage": "30s", "timeout": "30s"}},
        "packages": {"@*/*": dict(rule), "**": dict(rule)},
    }
    if store_section is not None:
        config["store"] = {"aws-s3-storage": store_section}
    path = workdir / "tarhold.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = [str(TARHOLD), "serve", "-c", str(path), "--listen", f"{HOST}:{port}"]
    process = ServerProcess.spawn("tarhold", argv, cwd=workdir, log_dir=workdir)
    process.wait_until_ready(lambda: ping(f"http://{HOST}:{port}"), timeout=60, what="/-/ping")
    return Server("tarhold", process, port)


def start_aws(workdir: Path, started: list[ServerProcess]) -> dict[str, Any]:
    """A moto server (S3 and DynamoDB) with the bucket and the table tarhold needs."""
    moto = start_moto(workdir)
    started.append(moto.process)
    dynamodb = moto.dynamodb_section("tarhold-soak")
    section = {**moto.s3_section("tarhold-soak", "soak/"),
               **{key: dynamodb[key] for key in ("dynamoTableName", "dynamoEndpoint", "dynamoRegion")}}
    asyncio.run(provision_aws(section))
    return section


def npm_project(base: Path, registry: str) -> tuple[dict[str, str], IO[bytes]]:
    """An empty project, cache and HOME under `base` with npm pointed at `registry`: (env, log file)."""
    project = base / "project"
    project.mkdir(parents=True)
    (project / "package.json").write_text(json.dumps({"name": "soak-npm", "version": "1.0.0", "private": True}))
    env = {key: value for key, value in os.environ.items() if not key.lower().startswith("npm_config_")}
    env.update({"HOME": str(base), "npm_config_cache": str(base / "cache"), "npm_config_registry": registry,
                "npm_config_userconfig": str(base / ".npmrc"), "npm_config_update_notifier": "false",
                "npm_config_audit": "false", "npm_config_fund": "false"})
    return env, (base / "npm.log").open("wb")


async def npm_installs(registry: str, workdir: Path, every: float, deadline: float,
                       runs: list[dict[str, Any]]) -> None:
    """`npm install <a tree>` with an empty cache, every `every` seconds, while the run lasts."""
    npm = shutil.which("npm")
    if npm is None:
        return
    index = 0
    await asyncio.sleep(min(every / 3, 30.0))
    while time.monotonic() + 10 < deadline:
        base = workdir / f"npm-{index}"
        env, log = npm_project(base, registry)
        root = TREES[index % len(TREES)]
        started = time.monotonic()
        with log:
            process = await asyncio.create_subprocess_exec(
                npm, "install", f"{root}@latest", "--ignore-scripts", cwd=base / "project", env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT)
            try:
                code = await asyncio.wait_for(process.wait(), timeout=NPM_TIMEOUT)
            except TimeoutError:
                code = -1
            finally:
                if process.returncode is None:  # timed out, or the run was interrupted
                    process.kill()
                    await process.wait()
        run = {"root": root, "rc": code, "wall_s": round(time.monotonic() - started, 1)}
        if code != 0:
            run["log_tail"] = (base / "npm.log").read_text(errors="replace")[-1500:]
        runs.append(run)
        shutil.rmtree(base, ignore_errors=True)
        index += 1
        await asyncio.sleep(max(0.0, min(every, deadline - time.monotonic() - 10)))


async def soak(args: argparse.Namespace, backend: str, tarhold: Server, token: str, workdir: Path) -> dict[str, Any]:
    """The traffic, the samples and the final check; everything but the verdicts."""
    stats, ledger, samples = Stats(), Ledger.of(PRIVATE), list[Sample]()
    npm_runs: list[dict[str, Any]] = []
    registry = tarhold.url
    connector = aiohttp.TCPConnector(limit=args.clients * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        rng = random.Random(args.seed)
        clients = [Client(session, registry, token, ledger, stats, random.Random(rng.random()), Mix())
                   for _ in range(args.clients)]
        for package in ledger.packages:  # every package exists before the clock starts
            await clients[0].publish(package)
        started = time.monotonic()
        deadline = started + args.minutes * 60
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_until(tarhold.pid, args.sample_every, started, stats, samples, stop))
        npm = asyncio.create_task(npm_installs(registry, workdir, args.npm_every, deadline, npm_runs)
                                  if args.npm else asyncio.sleep(0))
        try:
            await asyncio.gather(*(client.run_until(deadline) for client in clients))
            await npm
        finally:
            stop.set()
            await sampler
            npm.cancel()
        seconds = time.monotonic() - started
        ledger_check = await verify_ledger(session, registry, ledger, token)
        async with session.get(f"{registry}/-/metrics") as response:
            metrics_text = await response.text()
    warmup = args.warmup * 60 if args.warmup is not None else args.minutes * 60 * WARMUP_FRACTION
    return {
        "backend": backend, "minutes": args.minutes, "clients": args.clients, "seed": args.seed,
        "seconds": round(seconds, 1), "warmup_s": warmup, "requests": stats.requests,
        "operations": dict(stats.operations), "by_kind": stats.by_kind(),
        "client_5xx": stats.server_errors(), "no_answer": stats.no_answer(),
        "anomaly_count": stats.anomaly_count, "anomalies": stats.anomalies,
        "server_statuses": server_statuses(metrics_text),
        "rss": rss_verdict(samples, warmup), "fds": fd_verdict(samples, warmup, args.clients),
        "peak_rss_mb": tree_peak_rss_mb(tarhold.pid)[1],
        "samples": samples_json(samples),
        "npm": {"runs": len(npm_runs), "failures": sum(1 for run in npm_runs if run["rc"] != 0),
                "wall_s": [run["wall_s"] for run in npm_runs], "details": npm_runs},
        "ledger": ledger_check,
    }


def run_backend(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """Start everything for `backend`, soak, stop everything (by PID), judge."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    workdir = Path(tempfile.mkdtemp(prefix=f"tarhold-soak-{backend}-", dir=base))
    started: list[ServerProcess] = []
    result: dict[str, Any] = {}
    broke = False  # kept to look at: a run that failed with an error
    try:
        store = start_aws(workdir / "moto", started) if backend == "aws" else None
        upstream = start_upstream(workdir, args.release_every)
        started.append(upstream.process)
        tarhold = start_tarhold(workdir, upstream.url, store)
        started.append(tarhold.process)
        token = add_user(tarhold.url, "soaker")
        result = asyncio.run(soak(args, backend, tarhold, token, workdir))
        tarhold.stop()
        result["log_problems"] = log_problems(tarhold.process.log_path)
    except Exception:
        broke = True
        raise
    finally:
        for process in reversed(started):
            process.stop()
        if args.keep or broke:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["verdicts"] = verdicts(result)
    result["ok"] = all(result["verdicts"].values())
    return result


def write_result(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"soak-{result['backend']}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as Ctrl-C: the same cleanup (every started process stopped by its PID)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tarhold soak run (see bench/README.md)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--backend", choices=("embedded", "aws", "both"), default="embedded")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS/fd samples")
    parser.add_argument("--release-every", type=float, default=20.0, help="seconds between upstream releases")
    parser.add_argument("--npm-every", type=float, default=90.0, help="seconds between real `npm install` runs")
    parser.add_argument("--no-npm", dest="npm", action="store_false", help="never run the npm CLI")
    parser.add_argument("--warmup", type=float, default=None, help=(
        "minutes of warm-up before the RSS/fd verdicts (default: a fifth of the run); on S3 the"
        " caches fill at its slower request rate, about 4.5 minutes with 8 clients"))
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    ok = True
    for backend in (("embedded", "aws") if args.backend == "both" else (args.backend,)):
        try:
            result = run_backend(args, backend)
        except KeyboardInterrupt:
            print("interrupted: every process the soak started is stopped", file=sys.stderr)
            return 130
        path = write_result(result)
        print(summary(result))
        print(f"  results: {path}", flush=True)
        ok = ok and result["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
