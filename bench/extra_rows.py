"""The rows `make bench` adds when it can: tarhold on S3 + DynamoDB (bench/aws_stack.py),
tarhold with a mirror policy against tarhold without, and search over 100,000
packages (bench/search_scale.py).

A mixin of `bench.run.Bench`: the methods use its servers, settings and rows.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.aws_stack import SEAWEED_MISSING, AwsStacks
from bench.policy_row import check_policy_applied, count_versions, policy_section
from bench.procstat import tree_peak_rss_mb
from bench.report import Check, Row, median
from bench.scenarios import S3_SCENARIOS, SCENARIOS, Scenario, fetch, log
from bench.search_scale import run as run_search_scale
from bench.servers import Server, start_tarhold

# What the policy rows repeat: the packuments the policy is applied to.
POLICY_SCENARIOS = ("full", "abbreviated")
POLICY_TARGET = 0.9  # the issue's: with a policy, at least 90% of the throughput without
# The search targets with 100,000 packages in the list: p99 and the server's RSS growth.
SEARCH_P99_MS = 50
SEARCH_GROWTH_MB = 100


class ExtraRows(AwsStacks):
    """S3 + DynamoDB rows, the policy rows and the search rows, for `Bench`."""

    settings: Any
    workdir: Path
    upstream: Server
    notes: list[str]

    def s3_rows(self) -> None:
        """tarhold on S3 (SeaweedFS) + DynamoDB (DynamoDB Local), when both are installed."""
        stack = self.aws_stack()
        if stack is None:
            self.notes.append(f"S3 + DynamoDB rows skipped: {SEAWEED_MISSING}")
            return
        section = self.aws_section(stack, "tarhold-bench", "bench/")
        server = self.keep(start_tarhold(self.workdir / "tarhold-s3", self.workdir / "tarhold-s3" / "unused",
                                         self.upstream.url, name="tarhold-s3", store_section=section))
        scenarios = [scenario for scenario in SCENARIOS if scenario.key in S3_SCENARIOS]
        for scenario in scenarios:
            fetch(server.url + scenario.path, scenario.headers)
        for scenario in scenarios:
            self.guarded(f"{scenario.label} (S3)",
                         lambda scenario=scenario: self.http_row(scenario, [server], " (S3+DynamoDB)"))
        largest, total = tree_peak_rss_mb(server.pid)
        self.raw["peak_rss_s3"] = {"largest_process_mb": largest, "tree_mb": total}
        self.rows.append(Row("peak RSS (S3+DynamoDB instance)", "MB", total, checks=[Check("max", 200)]))

    # -- policy --------------------------------------------------------------------

    def policy_rows(self) -> None:
        """A second tarhold (own storage, same upstream) whose `policy:` hides some of
        bench-full's versions (`bench.policy_row`), measured with each scenario's load,
        runs interleaved with the policy-free tarhold (the reference column).
        """
        full = SCENARIOS[0]
        plain = json.loads(fetch(self.tarhold.url + full.path, full.headers))
        policy = policy_section(plain.get("time") or {}, datetime.now(UTC))
        server = self.keep(start_tarhold(self.workdir / "tarhold-policy", self.workdir / "tarhold-policy" / "storage",
                                         self.upstream.url, name="tarhold-policy", policy=policy))
        try:
            policed = json.loads(fetch(server.url + full.path, full.headers))
            try:
                hidden = check_policy_applied(plain, policed)
            except RuntimeError as exc:
                self.rows.append(Row(f"{full.label}, with a policy (ref: without)", full.unit,
                                     checks=[Check("ref_min", POLICY_TARGET)], note=f"FAILED: {exc}"))
                raise
            log(f"policy: {len(hidden)} of {count_versions(plain)} versions of {full.path} hidden")
            self.raw["policy"] = {"config": policy, "hidden": hidden}
            for scenario in SCENARIOS:
                if scenario.key in POLICY_SCENARIOS:
                    self.guarded(f"{scenario.label} with a policy",
                                 lambda scenario=scenario: self.policy_row(server, scenario))
        finally:
            self.started.remove(server)
            server.stop()

    def policy_row(self, server: Server, scenario: Scenario) -> None:
        label = f"{scenario.label}, with a policy (ref: without)"
        bodies = {name: fetch(url + scenario.path, scenario.headers)
                  for name, url in (("policy", server.url), ("plain", self.tarhold.url))}
        counts = {name: count_versions(json.loads(body)) for name, body in bodies.items()}
        if not counts["policy"] < counts["plain"]:
            self.rows.append(Row(label, scenario.unit, checks=[Check("ref_min", POLICY_TARGET)],
                                 note=f"FAILED: {counts['policy']} versions served with the policy,"
                                      f" {counts['plain']} without"))
            raise RuntimeError(f"{scenario.label}: the policy hid nothing ({counts})")
        rps: dict[str, list[float]] = {"policy": [], "plain": []}
        cpu: dict[str, list[float]] = {"policy": [], "plain": []}
        raw: dict[str, list[Any]] = {"policy": [], "plain": []}
        errors: list[str] = []
        pair = [("policy", server), ("plain", self.tarhold)]
        for run in range(self.settings.runs):
            # Each goes first every other run, so neither always follows the other's load.
            for name, target in pair if run % 2 == 0 else pair[::-1]:
                log(f"{scenario.label} with a policy: {target.name}, run {run + 1}/{self.settings.runs}")
                result, per_request = self.measure(target, scenario.path, scenario.headers, scenario=scenario)
                rps[name].append(result.rps)
                if per_request is not None:
                    cpu[name].append(per_request)
                raw[name].append({**result.__dict__, "rps": result.rps, "cpu_ms_per_request": per_request})
                if result.errors or not result.requests:
                    errors.append(f"{target.name}: {result.errors} errors of {result.requests}")
        self.raw[f"policy_{scenario.key}"] = raw
        sizes = (f"{counts['policy']} of {counts['plain']} versions,"
                 f" {len(bodies['policy']) // 1024} of {len(bodies['plain']) // 1024} KB")
        self.rows.append(Row(label, scenario.unit, median(rps["policy"]), None, median(rps["plain"]), "without",
                             [Check("ref_min", POLICY_TARGET)], note="; ".join([sizes, *errors])))
        self.rows.append(Row("  server CPU per request", "ms", median(cpu["policy"]), None, median(cpu["plain"]),
                             "without"))

    # -- search --------------------------------------------------------------------

    def search_rows(self) -> None:
        """The 100,000-package search (bench/search_scale.py): two more `tarhold serve`, one on
        an empty storage and one on BENCH_SEARCH_COUNT packages, p50/p99 per endpoint and RSS growth."""
        count = int(os.environ.get("BENCH_SEARCH_COUNT") or 100_000)
        repeats = int(os.environ.get("BENCH_SEARCH_REQUESTS") or (50 if self.settings.quick else 200))
        log(f"search: {count} packages, {repeats} requests per endpoint")
        report = run_search_scale(count, repeats, self.workdir / "search")
        self.raw["search"] = {
            "count": count, "requests": repeats, "latencies_s": report.filled.latencies,
            "rss_mb": report.filled.rss_mb, "rss_empty_mb": report.empty.rss_mb,
            "peak_mb": report.filled.peak_mb, "start_seconds": report.filled.start_seconds,
            "propagation_seconds": report.propagation_seconds,
        }
        for label, p50, p99 in report.rows():
            self.rows.append(Row(f"search {count:,}: {label} p99", "ms", p99, checks=[Check("max", SEARCH_P99_MS)],
                                 note=f"p50 {p50:.1f} ms"))
        self.rows.append(Row(f"search {count:,}: server RSS growth", "MB", report.growth_mb,
                             checks=[Check("max", SEARCH_GROWTH_MB)],
                             note=f"{report.filled.rss_mb:.0f} MB vs {report.empty.rss_mb:.0f} MB with no package"))
        if report.propagation_seconds is not None:
            self.rows.append(Row(f"search {count:,}: a change elsewhere found after", "s",
                                 report.propagation_seconds))
