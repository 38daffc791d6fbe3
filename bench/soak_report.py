"""The soak run's samples of the server, its verdicts and its summary.

Definitions (also in bench/README.md):

- **warm-up**: the first `WARMUP_FRACTION` of the run (2 minutes of 10):
  caches fill, the mirror fetches every package once, the allocator finds
  its working set. Samples taken then are kept but judged by nothing.
- **RSS flat**: every post-warm-up sample of the server's RSS lies within
  ±`RSS_BAND` of the median of those samples.
- **fds flat**: no upward trend — the median of the last third of the
  post-warm-up samples is at most `FD_TREND` above the median of the first
  third — and max − min over them ≤ 2 × clients + `NPM_SOCKETS`: keep-alive
  connections come and go (the clients' pool holds up to two per client,
  and a running `npm install` opens up to 15 sockets of its own).
- **zero 5xx**: no 5xx answer seen by the soak's clients, nor counted by
  the server's own `tarhold_http_requests_total` (which also sees npm's).
- **no anomalies**: no answer other than the expected one, no request
  without an answer, no integrity mismatch during installs.
- **ledger**: every check of `bench.soak_verify` passed.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.procstat import PROC, descendants, parse_status_kb
from bench.soak_ledger import Stats

WARMUP_FRACTION = 0.2
RSS_BAND = 0.10
NPM_SOCKETS = 16
FD_TREND = 2
METRIC_LINE = re.compile(r'^tarhold_http_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.e+]+)$')


@dataclass(frozen=True)
class Sample:
    """The server at one moment: seconds into the run, RSS (MB), open fds, requests so far."""

    t: float
    rss_mb: float
    fds: int
    processes: int
    requests: int


def take_sample(pid: int, t: float, requests: int) -> Sample:
    """RSS (VmRSS) and open fds summed over `pid` and its descendants."""
    rss_kb, fds = 0, 0
    members = descendants(pid)
    for member in members:
        try:
            rss_kb += parse_status_kb((PROC / str(member) / "status").read_text(), "VmRSS")
            fds += len(os.listdir(PROC / str(member) / "fd"))
        except OSError:
            continue
    return Sample(round(t, 1), round(rss_kb / 1024, 1), fds, len(members), requests)


async def sample_until(pid: int, every: float, started: float, stats: Stats, samples: list[Sample],
                       stop: asyncio.Event) -> None:
    """A sample now and every `every` seconds until `stop` is set."""
    while True:
        samples.append(take_sample(pid, time.monotonic() - started, stats.requests))
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        except TimeoutError:
            continue


def rss_verdict(samples: list[Sample], warmup: float) -> dict[str, Any]:
    during = [s.rss_mb for s in samples if s.t < warmup]
    after = [s.rss_mb for s in samples if s.t >= warmup]
    if not after:
        return {"ok": False, "reason": "no sample after the warm-up"}
    median = statistics.median(after)
    low, high = min(after), max(after)
    return {
        "ok": low >= median * (1 - RSS_BAND) and high <= median * (1 + RSS_BAND),
        "warmup_end_mb": during[-1] if during else None,
        "min_mb": low, "median_mb": round(median, 1), "max_mb": high,
        "band_pct": [round((low / median - 1) * 100, 1), round((high / median - 1) * 100, 1)],
        "first_mb": after[0], "last_mb": after[-1],
        "slope_mb_per_min": round(slope([s.t for s in samples if s.t >= warmup], after) * 60, 2),
        # Still growing at the end, or levelled off: the slope over the last third of the run.
        "last_third_slope_mb_per_min": round(slope(*_last_third(samples)) * 60, 2),
        "samples_after_warmup": len(after),
    }


def fd_verdict(samples: list[Sample], warmup: float, clients: int) -> dict[str, Any]:
    after = [s.fds for s in samples if s.t >= warmup]
    if not after:
        return {"ok": False, "reason": "no sample after the warm-up"}
    third = max(1, len(after) // 3)
    first, last = statistics.median(after[:third]), statistics.median(after[-third:])
    spread, bound = max(after) - min(after), 2 * clients + NPM_SOCKETS
    # With fewer than three samples a third (a run of a minute or two) a trend is noise.
    trend_ok = last - first <= FD_TREND or len(after) < 9
    return {
        "ok": spread <= bound and trend_ok,
        "min": min(after), "max": max(after), "spread": spread, "spread_bound": bound,
        "first_third_median": first, "last_third_median": last,
    }


def _last_third(samples: list[Sample]) -> tuple[list[float], list[float]]:
    end = samples[-1].t if samples else 0.0
    tail = [s for s in samples if s.t >= end * 2 / 3]
    return [s.t for s in tail], [s.rss_mb for s in tail]


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0.0 for fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0


def server_statuses(metrics_text: str) -> dict[str, int]:
    """Requests by status from the server's `tarhold_http_requests_total`."""
    totals: dict[str, int] = {}
    for line in metrics_text.splitlines():
        match = METRIC_LINE.match(line.strip())
        if match is None:
            continue
        status = re.search(r'status="(\d+)"', match.group("labels"))
        if status is not None:
            totals[status.group(1)] = totals.get(status.group(1), 0) + int(float(match.group("value")))
    return dict(sorted(totals.items()))


def log_problems(log_path: Path, limit: int = 20) -> dict[str, Any]:
    """Lines of the server's log at ERROR or above, and tracebacks: a count and the first few."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return {"count": 0, "first": [], "warnings": 0, "first_warnings": []}
    bad = [line for line in lines if re.search(r"\b(ERROR|CRITICAL|FATAL|Traceback)\b", line)]
    warnings = [line for line in lines if re.search(r"\bWARNING\b", line)]
    return {"count": len(bad), "first": bad[:limit], "warnings": len(warnings), "first_warnings": warnings[:limit]}


def verdicts(result: dict[str, Any]) -> dict[str, bool]:
    server_5xx = sum(n for status, n in result["server_statuses"].items() if status.startswith("5"))
    return {
        "rss_flat": bool(result["rss"]["ok"]),
        "fds_flat": bool(result["fds"]["ok"]),
        "zero_5xx": result["client_5xx"] == 0 and server_5xx == 0,
        "no_anomalies": result["anomaly_count"] == 0 and result["npm"]["failures"] == 0,
        "ledger_readable": bool(result["ledger"]["ok"]),
    }


def samples_json(samples: list[Sample]) -> list[dict[str, Any]]:
    return [asdict(sample) for sample in samples]


def summary(result: dict[str, Any]) -> str:
    """A few lines a person reads: throughput, latencies, memory, fds, the verdicts."""
    rss, fds, ledger = result["rss"], result["fds"], result["ledger"]
    lines = [
        (f"soak on {result['backend']}: {result['minutes']:g} min, {result['clients']} clients,"
         f" {result['requests']} requests ({result['requests'] / max(result['seconds'], 1):.0f}/s),"
         f" operations {dict(result['operations'])}"),
        f"  {'kind':<26}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}  statuses",
    ]
    for kind, row in result["by_kind"].items():
        lines.append(f"  {kind:<26}{row['requests']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}  {row['statuses']}")
    npm = result["npm"]
    if npm["runs"]:
        lines.append(f"  npm install (CLI): {npm['runs']} runs, {npm['failures']} failed,"
                     f" wall {npm['wall_s']}")
    if rss.get("median_mb") is not None:
        lines.append(
            f"  RSS MB: warm-up end {rss['warmup_end_mb']}, after warm-up min {rss['min_mb']} / median"
            f" {rss['median_mb']} / max {rss['max_mb']} ({rss['band_pct'][0]:+}% / {rss['band_pct'][1]:+}%),"
            f" slope {rss['slope_mb_per_min']} MB/min over {rss['samples_after_warmup']} samples"
            f" ({rss['last_third_slope_mb_per_min']} MB/min over the last third)")
    if fds.get("min") is not None:
        lines.append(f"  open fds after warm-up: min {fds['min']}, max {fds['max']}, first-third median"
                     f" {fds['first_third_median']}, last-third median {fds['last_third_median']}")
    lines.append(
        f"  5xx: clients {result['client_5xx']}, server {result['server_statuses']};"
        f" anomalies {result['anomaly_count']}; server log errors {result['log_problems']['count']}")
    lines.append(
        f"  ledger: {ledger['acknowledged_live']} acknowledged live ({ledger['tarballs_checked']} tarballs read"
        f" back), {ledger['unpublished']} unpublished, {ledger['uncertain']} uncertain,"
        f" {len(ledger['problems'])} problems")
    verdict = result["verdicts"]
    lines.append("  verdict: " + ", ".join(f"{key} {'ok' if ok else 'FAIL'}" for key, ok in verdict.items()))
    for anomaly in result["anomalies"][:5]:
        lines.append(f"  anomaly: {anomaly}")
    for problem in ledger["problems"][:5]:
        lines.append(f"  ledger problem: {problem}")
    return "\n".join(lines)
