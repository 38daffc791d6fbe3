"""`make bench`: tarhold side by side with Verdaccio, one table.

    .venv/bin/python -m bench.run          # BENCH_QUICK=1 for a short run

Starts a fake upstream (its own process) serving the corpus of
`bench.corpus`, tarhold (embedded storage) and — when installed — Verdaccio
6, both proxying it; references (bare aiohttp from memory, nginx or aiohttp
FileResponse for files); then runs each scenario `runs` times and prints
medians. Everything listens on 127.0.0.1 and is stopped by its own PID.
See bench/README.md for the rows and the environment knobs.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import corpus as C
from bench.aws_stack import AwsStack
from bench.cold_rows import ColdRows
from bench.extra_rows import ExtraRows
from bench.load import LoadResult, run_load, wrk_available
from bench.npm import InstallResult, NpmProject, install, npm_binary
from bench.procstat import tree_cpu, wait_idle
from bench.profiles import Profiles
from bench.publish import publish_many
from bench.redirect_rows import RedirectRows
from bench.report import Check, Row, format_table, median, selected_rows
from bench.rss_rows import RssRows
from bench.scenarios import (
    RESULTS,
    SCENARIOS,
    Scenario,
    Settings,
    env_flag,
    fetch,
    fetch_as_served,
    log,
)
from bench.servers import (
    Server,
    start_nginx,
    start_reference,
    start_tarhold,
    start_upstream,
    start_verdaccio_proxy,
    tarhold_workers_supported,
    verdaccio_installed,
)


class Bench(ExtraRows, ColdRows, Profiles, RssRows, RedirectRows):
    def __init__(self, settings: Settings, workdir: Path, parts: frozenset[str] | None = None) -> None:
        self.settings = settings
        self.workdir = workdir
        self.started: list[Server] = []
        self.rows: list[Row] = []
        self.raw: dict[str, Any] = {}
        self.notes: list[str] = []
        self.profile_files: list[str] = []
        self.npm_projects: dict[str, list[NpmProject]] = {}  # per server, for the warm npm ci profile
        self.aws_stacks: dict[str, AwsStack] = {}  # S3 + DynamoDB servers, started on first use
        self.medians: dict[str, dict[str, float | None]] = {}
        self.memory_ref: Server | None = None
        self.files_ref: Server | None = None
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.parts = parts  # BENCH_ROWS; None: every part
        self.policy = env_flag("BENCH_POLICY", True)

    def wants(self, part: str) -> bool:
        """Whether `BENCH_ROWS` (unset: every part) asks for this part of the run."""
        return self.parts is None or part in self.parts

    def keep(self, server: Server) -> Server:
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in reversed(self.started):
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - stop the others anyway
                log(f"stopping {server.name} failed:\n{traceback.format_exc()}")
        self.started.clear()

    def guarded(self, what: str, step: Callable[[], None]) -> None:
        """Run one part; a failure becomes a note, the rest still runs."""
        try:
            step()
        except Exception as exc:  # noqa: BLE001
            log(f"{what} failed:\n{traceback.format_exc()}")
            self.notes.append(f"{what} failed: {exc!r}"[:300])

    # -- the run -----------------------------------------------------------------

    def run(self) -> None:
        s = self.settings
        log(f"settings: {s}, rows: {', '.join(sorted(self.parts)) if self.parts else 'all'},"
            f" policy rows: {self.policy}")
        self.upstream = self.keep(start_upstream(self.workdir / "upstream", s.tree_size, s.huge_versions,
                                                 s.upstream_latency))
        log(f"fake upstream on {self.upstream.url}, answering {s.upstream_latency * 1000:g} ms late")
        self.tarhold = self.keep(start_tarhold(self.workdir / "tarhold", self.workdir / "tarhold" / "storage",
                                               self.upstream.url))
        self.verdaccio: Server | None = None
        compared = any(self.wants(part) for part in ("npm", "http", "publish", "rss"))  # rows with a V column
        if compared and s.verdaccio and verdaccio_installed():
            self.verdaccio = self.keep(start_verdaccio_proxy(self.workdir / "verdaccio", self.upstream.url))
        elif compared:
            self.notes.append("Verdaccio not run (not installed or BENCH_VERDACCIO=0): no ratios")
        self.servers = [server for server in (self.tarhold, self.verdaccio) if server is not None]

        if self.wants("npm"):
            if s.npm and npm_binary():
                self.guarded("npm ci", self.npm_rows)
            else:
                self.notes.append("npm ci rows skipped (no npm or BENCH_NPM=0)")
        if self.wants("http") or self.wants("s3"):
            self.guarded("warming", self.warm)
            self.record_rss("warming", self.servers)  # the first GET of each scenario, through the upstream
            self.guarded("references", self.start_references)
        if self.wants("http"):
            for scenario in SCENARIOS:
                self.guarded(scenario.label, lambda scenario=scenario: self.http_row(scenario))
        if s.profile and self.wants("profile"):
            self.guarded("profile", self.profile)
        if self.wants("publish"):
            self.guarded("publish", self.publish_row)
        if self.wants("workers"):
            self.guarded("workers", self.workers_row)
        if self.wants("policy"):
            if self.policy:
                self.guarded("policy", self.policy_rows)
            else:
                self.notes.append("policy rows skipped (BENCH_POLICY=0)")
        if self.wants("rss"):
            self.rss_row()
        if self.wants("s3"):
            if s.s3:
                self.guarded("S3 + DynamoDB", self.s3_rows)
            else:
                self.notes.append("S3 + DynamoDB rows skipped (BENCH_S3=0)")
        if self.wants("redirect"):
            if s.s3:
                self.guarded("tarball redirect", self.redirect_rows)  # bench/redirect_rows.py
            else:
                self.notes.append("tarball redirect rows skipped (BENCH_S3=0)")
        if self.wants("search"):
            self.guarded("search", self.search_rows)  # bench/extra_rows.py

    # -- npm ci ------------------------------------------------------------------

    def npm_rows(self) -> None:
        s = self.settings
        package_json, lock = C.lockfile(s.tree_size, "http://127.0.0.1")
        installs: dict[str, dict[str, Any]] = {}
        firsts: dict[str, dict[str, Any]] = {}  # the first run of the cold rows
        for server in self.servers:
            base = self.workdir / "npm" / server.name
            projects = [NpmProject(base / f"p{index}", package_json, lock, server.url) for index in range(4)]
            cold = firsts[server.name] = self.cold_install(server, server.name, 0)
            warm: list[InstallResult] = []
            four: list[InstallResult] = []
            for run in range(s.runs):
                log(f"{server.name}: warm npm ci, run {run + 1}/{s.runs}")
                warm.append(self.checked(install(projects[:1], server.pid), f"{server.name} npm ci"))
            for run in range(s.runs):
                log(f"{server.name}: 4 concurrent npm ci, run {run + 1}/{s.runs}")
                four.append(self.checked(install(projects, server.pid), f"{server.name} 4× npm ci"))
            self.record_rss("npm ci", [server])
            self.npm_projects[server.name] = projects
            installs[server.name] = {
                "cold": cold, "warm": [r.__dict__ for r in warm], "four": [r.__dict__ for r in four],
            }
        self.raw["npm"] = installs

        def pick(name: str, kind: str, attr: str) -> float | None:
            if name not in installs:
                return None
            results = installs[name][kind]
            results = results if isinstance(results, list) else [results]
            return median([r[attr] for r in results if r["ok"]])

        size = f"{s.tree_size} pkgs"
        self.rows += [
            Row(f"npm ci warm, wall ({size})", "s", pick("tarhold", "warm", "wall"), pick("verdaccio", "warm", "wall")),
            Row("npm ci warm, server CPU", "s", pick("tarhold", "warm", "server_cpu"),
                pick("verdaccio", "warm", "server_cpu"), checks=[Check("max", 0.2)]),
            Row("4 concurrent npm ci, total wall", "s", pick("tarhold", "four", "wall"),
                pick("verdaccio", "four", "wall"), checks=[Check("vs_max", 0.8)]),
            Row("4 concurrent npm ci, server CPU", "s", pick("tarhold", "four", "server_cpu"),
                pick("verdaccio", "four", "server_cpu")),
        ]
        self.guarded("cold npm ci", lambda: self.cold_rows(firsts))

    def checked(self, result: InstallResult, what: str) -> InstallResult:
        if not result.ok:
            log(f"{what} failed:\n{result.error}")
            self.notes.append(f"{what} failed: {result.error.strip().splitlines()[-1:]}")
        return result

    # -- HTTP scenarios ------------------------------------------------------------

    def warm(self) -> None:
        """One GET of every scenario's URL through each registry, so the
        measured runs read from the registry's storage, not the upstream.
        """
        for server in self.servers:
            for scenario in SCENARIOS:
                fetch(server.url + scenario.path, scenario.headers)

    def start_references(self) -> None:
        """The exact bytes tarhold serves, as files, for the reference servers."""
        root = self.workdir / "reference-root"
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        for scenario in SCENARIOS:
            if scenario.reference_file:  # gzip stays gzip: the bytes tarhold sends, as sent
                body = fetch_as_served(self.tarhold.url + scenario.path, scenario.headers)
                (root / scenario.reference_file).write_bytes(body)
        self.sizes = {path.name: path.stat().st_size for path in root.iterdir()}
        self.raw["sizes"] = self.sizes
        log(f"served sizes: {self.sizes}")
        self.memory_ref = self.keep(start_reference(self.workdir / "ref", root))
        nginx = start_nginx(self.workdir / "nginx", root)
        self.files_ref = self.keep(nginx) if nginx is not None else None
        if self.files_ref is None:
            self.files_ref = self.keep(start_reference(self.workdir / "ref", root, from_files=True))
            self.notes.append("nginx not installed: large-tarball reference is aiohttp FileResponse")

    def measure(self, server: Server, path: str, headers: dict[str, str], *, cpu: bool = True,
                scenario: Scenario | None = None) -> tuple[LoadResult, float | None]:
        """One run of load; then wait until the server is idle again."""
        duration = max(self.settings.duration, scenario.min_duration if scenario else 0.0)
        connections = (scenario.connections if scenario else None) or self.settings.connections
        before = tree_cpu(server.pid) if cpu else 0.0
        result = run_load(server.url + path, duration, connections, headers)
        cpu_ms = ((tree_cpu(server.pid) - before) * 1000 / result.requests) if cpu and result.requests else None
        waited = wait_idle(server.pid)
        if waited > 2:
            log(f"{server.name} was busy for {waited:.1f}s after the load stopped")
        return result, cpu_ms

    def http_row(self, scenario: Scenario, servers: list[Server] | None = None, suffix: str = "") -> None:
        """Each server (and the scenario's reference) `runs` times; two rows:
        the scenario's median and tarhold's CPU per request. With `servers`
        (a tarhold variant alone), Verdaccio's medians of the first pass are
        reused for the ratio.
        """
        s = self.settings
        value: dict[str, list[float]] = {}
        cpu_ms: dict[str, list[float]] = {}
        raw: dict[str, Any] = {}
        errors: list[str] = []
        first_pass = servers is None
        targets = [(server, scenario.path, True) for server in (servers or self.servers)]
        reference = self.memory_ref if scenario.reference_kind == "memory" else self.files_ref
        ref_name = reference.name if reference is not None and scenario.reference_file else ""
        if first_pass and ref_name:
            targets.append((reference, "/" + scenario.reference_file, False))
        for server, path, with_cpu in targets:
            for run in range(s.runs):
                log(f"{scenario.label}{suffix}: {server.name}, run {run + 1}/{s.runs}")
                result, per_request = self.measure(server, path, scenario.headers, cpu=with_cpu,
                                                   scenario=scenario)
                number = result.rps if scenario.unit == "req/s" else result.mb_per_second
                value.setdefault(server.name, []).append(number)
                if per_request is not None:
                    cpu_ms.setdefault(server.name, []).append(per_request)
                raw.setdefault(server.name, []).append({**result.__dict__, "cpu_ms_per_request": per_request})
                if result.errors:
                    errors.append(f"{server.name}: {result.errors} errors of {result.requests}")
                if not result.requests:
                    errors.append(f"{server.name} answered no request within the run")
        self.raw[scenario.key + suffix.replace(" ", "_")] = raw
        self.record_rss(scenario.label + suffix, servers or self.servers)
        tarhold = servers[0].name if servers else "tarhold"
        if first_pass:
            self.medians[scenario.key] = {
                "verdaccio": median(value.get("verdaccio", [])), "verdaccio_cpu": median(cpu_ms.get("verdaccio", [])),
                "reference": median(value.get(ref_name, [])) if ref_name else None,
            }
        kept = self.medians.get(scenario.key, {})
        self.rows.append(Row(
            scenario.label + suffix, scenario.unit, median(value.get(tarhold, [])), kept.get("verdaccio"),
            kept.get("reference"), ref_name, list(scenario.checks), note="; ".join(errors),
        ))
        self.rows.append(Row(
            "  server CPU per request", "ms", median(cpu_ms.get(tarhold, [])), kept.get("verdaccio_cpu"),
            checks=list(scenario.cpu_checks),
        ))

    # -- S3 + DynamoDB ---------------------------------------------------------------

    def publish_row(self) -> None:
        count = self.settings.publish_count
        seconds: dict[str, float] = {}
        for server in self.servers:
            log(f"{server.name}: publishing {count} packages back to back")
            seconds[server.name] = publish_many(server.url, f"bench-pub-{server.name}-{self.stamp.lower()}", count)
        self.raw["publish_seconds"] = seconds
        self.record_rss("publish", self.servers)
        self.rows.append(Row(f"publish {count} small packages", "s", seconds.get("tarhold"),
                             seconds.get("verdaccio"), checks=[Check("max", 20)] if count == 200 else []))

    def workers_row(self) -> None:
        if not tarhold_workers_supported():
            self.rows.append(Row("full packument, --workers 2 (ref: 1 worker)", "req/s",
                                 note="skipped: `tarhold serve --workers` is not available"))
            return
        scenario = SCENARIOS[0]
        two = self.keep(start_tarhold(self.workdir / "tarhold-2w", self.workdir / "tarhold" / "storage",
                                      self.upstream.url, name="tarhold-2w", workers=2))
        assert two is not None
        fetch(two.url + scenario.path, scenario.headers)
        rps, one_rps = [], []
        for run in range(self.settings.runs):
            log(f"--workers 2 vs 1, run {run + 1}/{self.settings.runs}")
            rps.append(self.measure(two, scenario.path, scenario.headers)[0].rps)
            one_rps.append(self.measure(self.tarhold, scenario.path, scenario.headers)[0].rps)
        self.raw["workers"] = {"two": rps, "one": one_rps}
        self.rows.append(Row("full packument, --workers 2 (ref: 1 worker)", "req/s", median(rps), None,
                             median(one_rps), "1 worker"))
        self.started.remove(two)
        two.stop()

    # -- results -------------------------------------------------------------------

    def write_results(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.stamp}.json"
        document = {
            "time": self.stamp,
            "settings": {**self.settings.__dict__, "rows": sorted(self.parts) if self.parts else "all",
                         "policy": self.policy},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "load_generator": "wrk" if wrk_available() else "bench.load (aiohttp)",
            "rows": [row.as_json() for row in self.rows],
            "notes": self.notes,
            "profile": self.profile_files,
            "raw": self.raw,
        }
        path.write_text(json.dumps(document, indent=2, default=str))
        return path


def main() -> int:
    settings = Settings.from_env()
    parts = selected_rows(os.environ.get("BENCH_ROWS"))  # a typo stops here, before anything starts
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    workdir = Path(tempfile.mkdtemp(prefix="tarhold-bench-", dir=base))
    bench = Bench(settings, workdir, parts)
    try:
        bench.guarded("the run", bench.run)
    finally:
        bench.stop_all()
        if not env_flag("BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    path = bench.write_results()
    print()
    print(f"tarhold benchmark {bench.stamp} — medians of {settings.runs} run(s) of {settings.duration:g}s,"
          f" {settings.connections} connections, {'wrk' if wrk_available() else 'bench.load'};"
          f" ratio = tarhold ÷ Verdaccio")
    print(format_table(bench.rows))
    for note in bench.notes:
        print(f"note: {note}")
    if bench.profile_files:
        print("profile: " + ", ".join(bench.profile_files))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
