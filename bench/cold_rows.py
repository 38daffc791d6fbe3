"""The cold `npm ci` rows: the first install on empty storage, with tarhold's
prefetch on and off, against Verdaccio, and what each asked of the upstream.

A mixin of `bench.run.Bench`. A cold install can be measured once per
storage, so each run after the first starts the registry afresh on an empty
directory (the first run of tarhold and Verdaccio is the cold install of the
instances the warm rows use next). Runs go round the three registries in
turn, so a slow spell of the machine does not fall on one of them alone.
Before and after each install the harness reads the fake upstream's request
counts (`bench/upstream.py`); after the install it waits until they stop
moving, so prefetches still running when npm is done are counted too.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import corpus as C
from bench.npm import InstallResult, NpmProject, install
from bench.report import Check, Row, median
from bench.scenarios import log
from bench.servers import Server, start_tarhold, start_verdaccio_proxy
from bench.upstream import COUNTS_PATH
from uplinks.config import UplinkConfig

PREFETCH_DEFAULT = bool(UplinkConfig.prefetch)
QUIET_FOR = 0.5  # seconds without an upstream request: the registry is done
QUIET_WITHIN = 15.0
COLD_TARGET = 0.6  # the issue's: a cold install in at most 0.6× Verdaccio's wall time


def prefetch_label(on: bool) -> str:
    return f"prefetch {'on' if on else 'off'}{' (default)' if on == PREFETCH_DEFAULT else ''}"


class ColdRows:
    """Cold installs of the bench tree through fresh registries, for `Bench`."""

    settings: Any
    workdir: Path
    upstream: Server
    verdaccio: Server | None
    rows: list[Row]
    raw: dict[str, Any]
    notes: list[str]

    checked: Callable[[InstallResult, str], InstallResult]

    def upstream_counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.upstream.url + COUNTS_PATH, timeout=10) as response:  # noqa: S310
            return dict(json.loads(response.read()))

    def counted_install(self, server: Server, project: NpmProject) -> dict[str, Any]:
        """One `npm ci` through `server`, with what the upstream received meanwhile."""
        before = self.upstream_counts()
        result = self.checked(install([project], server.pid), f"{server.name} cold npm ci")
        after, deadline = self.upstream_counts(), time.monotonic() + QUIET_WITHIN
        while time.monotonic() < deadline:
            time.sleep(QUIET_FOR)
            again = self.upstream_counts()
            if again == after:
                break
            after = again
        asked = {kind: after.get(kind, 0) - before.get(kind, 0) for kind in after}
        return {**result.__dict__, "upstream": {kind: n for kind, n in asked.items() if n},
                "mirror": mirror_counts(server) if server.name.startswith("tarhold") else {}}

    def cold_install(self, server: Server, name: str, run: int) -> dict[str, Any]:
        package_json, lock = C.lockfile(self.settings.tree_size, "http://127.0.0.1")
        project = NpmProject(self.workdir / "npm-cold" / f"{name}-{run}", package_json, lock, server.url)
        log(f"{name}: cold npm ci, run {run + 1}/{self.settings.runs}"
            f" ({self.settings.tree_size} packages, upstream latency {self.settings.upstream_latency * 1000:g} ms)")
        return self.counted_install(server, project)

    def fresh(self, variant: str, run: int) -> Server:
        """A registry of `variant` on an empty storage directory of its own."""
        base = self.workdir / "cold" / f"{variant}-{run}"
        if variant == "verdaccio":
            return start_verdaccio_proxy(base, self.upstream.url)
        prefetch = PREFETCH_DEFAULT if variant == "tarhold" else not PREFETCH_DEFAULT
        return start_tarhold(base, base / "storage", self.upstream.url, name=variant,
                             uplink={"prefetch": prefetch})

    def cold_runs(self, first: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Every cold install: `first` (tarhold's and Verdaccio's, made by the npm rows) and the rest."""
        variants = ["tarhold", "tarhold-other"] + (["verdaccio"] if self.verdaccio is not None else [])
        runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
        for variant, result in first.items():
            runs[variant].append(result)
        for run in range(self.settings.runs):
            for variant in variants:
                if len(runs[variant]) > run:
                    continue
                server = self.fresh(variant, run)
                try:
                    runs[variant].append(self.cold_install(server, variant, run))
                finally:
                    server.stop()
        return runs

    def cold_rows(self, first: dict[str, dict[str, Any]]) -> None:
        """The rows: wall and CPU with the default, wall with the other setting, upstream requests."""
        runs = self.cold_runs(first)
        self.raw["npm_cold"] = runs

        def pick(variant: str, attr: str) -> float | None:
            return median([r[attr] for r in runs.get(variant, []) if r["ok"]])

        def asked(variant: str, kind: str | None = None) -> float | None:
            return median([sum(n for k, n in r["upstream"].items() if kind in (None, k))
                           for r in runs.get(variant, []) if r["ok"]])

        default, other = prefetch_label(PREFETCH_DEFAULT), prefetch_label(not PREFETCH_DEFAULT)
        latency = f"upstream latency {self.settings.upstream_latency * 1000:g} ms"
        split = "; ".join(
            f"{label}: {fmt_count(asked(variant, 'packument'))} packuments + {fmt_count(asked(variant, 'tarball'))}"
            " tarballs"
            for variant, label in (("tarhold", f"tarhold {default}"), ("tarhold-other", f"tarhold {other}"),
                                   ("verdaccio", "Verdaccio"))
            if runs.get(variant)
        )
        def mirrored(variant: str, kind: str) -> str:
            return fmt_count(median([r["mirror"].get(kind, 0) for r in runs[variant]]))

        waited = "; ".join(
            f"tarhold {label}: clients waited for {mirrored(v, 'requests_miss')} packument fetches,"
            f" {mirrored(v, 'prefetches_fetched')} prefetched"
            for v, label in (("tarhold", default), ("tarhold-other", other)) if runs.get(v)
        )
        self.rows += [
            Row(f"cold npm ci (empty storage), {default}, wall", "s", pick("tarhold", "wall"),
                pick("verdaccio", "wall"), checks=[Check("vs_max", COLD_TARGET)],
                note=f"median of {self.settings.runs} run(s), each on empty storage; {latency}"),
            Row("cold npm ci, server CPU", "s", pick("tarhold", "server_cpu"), pick("verdaccio", "server_cpu"),
                note=waited),
            Row(f"cold npm ci, {other}, wall", "s", pick("tarhold-other", "wall"), pick("verdaccio", "wall")),
            Row(f"cold npm ci, upstream requests (ref: {other})", "req", asked("tarhold"), asked("verdaccio"),
                asked("tarhold-other"), other.split(" (")[0], note=split),
        ]


def mirror_counts(server: Server) -> dict[str, float]:
    """tarhold's own count of packument lookups (hit, miss...) and prefetches (fetched, skipped),
    since it started: a miss is a packument a client waited for."""
    with urllib.request.urlopen(server.url + "/-/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in ("tarhold_uplink_cache_requests", "tarhold_uplink_prefetches"):
            for sample in family.samples:
                kind = f"{family.name.rsplit('_', 1)[-1]}_{sample.labels.get('result')}"
                counts[kind] = counts.get(kind, 0) + sample.value
    return counts


def fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
