"""Memory through the run: after each phase, each server's current RSS (VmRSS,
once it is idle) and its peak so far (VmHWM); at the end, the peak row and a
timeline of rows, one per phase.

A mixin of `bench.run.Bench`: the methods use its servers and rows.
"""

from __future__ import annotations

from typing import Any

from bench.procstat import tree_peak_rss_mb, tree_rss_mb, wait_idle
from bench.report import Check, Row
from bench.servers import Server

RSS_TARGET_MB = 200  # the issue's: tarhold's peak RSS through the run
# The servers of the table's two columns; the phases of other instances (S3,
# policy) are kept in the results file only.
COLUMNS = ("tarhold", "verdaccio")
PEAK_STEP_MB = 1.0  # a peak that moved less is not said to have risen


def merge_phase(entries: list[dict[str, Any]], phase: str, values: dict[str, float]) -> None:
    """Add `values` (server name → MB) to `phase`'s entry, made at the end when new:
    a phase measured one server at a time (npm ci) stays one entry.
    """
    for entry in entries:
        if entry["phase"] == phase:
            entry.update(values)
            return
    entries.append({"phase": phase, **values})


def timeline_rows(current: list[dict[str, Any]], peaks: list[dict[str, Any]]) -> list[Row]:
    """One row per phase: tarhold's and Verdaccio's RSS after it. The note names the peaks
    (VmHWM) that rose during the phase, so the phase that raised the peak row's figure
    stands out; a phase that raised none has no note.
    """
    peak_of = {entry["phase"]: entry for entry in peaks}
    so_far: dict[str, float] = {}
    rows = []
    for entry in current:
        if not any(name in entry for name in COLUMNS):
            continue
        peak = peak_of.get(entry["phase"], {})
        rose = [name for name in COLUMNS if name in peak and peak[name] >= so_far.get(name, 0.0) + PEAK_STEP_MB]
        so_far.update({name: peak[name] for name in COLUMNS if name in peak})
        note = ", ".join(f"{'Verdaccio' if name == 'verdaccio' else name} {peak[name]:.0f}" for name in rose)
        rows.append(Row(f"RSS after {entry['phase']}", "MB", entry.get("tarhold"), entry.get("verdaccio"),
                        note=f"peak rose to (MB): {note}" if note else ""))
    return rows


class RssRows:
    """`record_rss` after each phase; `rss_row` at the end, for `Bench`."""

    servers: list[Server]
    rows: list[Row]
    raw: dict[str, Any]

    def record_rss(self, phase: str, servers: list[Server]) -> None:
        """Each server's RSS once idle, and its peak so far, after `phase`: the
        timeline tells which phase raised the peak and whether memory came back.
        """
        current, peak = {}, {}
        for server in servers:
            wait_idle(server.pid, timeout=30)
            current[server.name] = round(tree_rss_mb(server.pid), 1)
            peak[server.name] = round(tree_peak_rss_mb(server.pid)[1], 1)
        merge_phase(self.raw.setdefault("rss_after", []), phase, current)
        merge_phase(self.raw.setdefault("peak_rss_after", []), phase, peak)

    def rss_row(self) -> None:
        """The peak RSS through the run (target ≤ 200 MB), then the timeline of `record_rss`."""
        peaks = {}
        for server in self.servers:
            largest, total = tree_peak_rss_mb(server.pid)
            peaks[server.name] = {"largest_process_mb": largest, "tree_mb": total}
        self.raw["peak_rss"] = peaks
        phases = self.raw.get("peak_rss_after", [])
        raised = next((entry["phase"] for entry in phases if entry.get("tarhold", 0) >= RSS_TARGET_MB), None)
        self.rows.append(Row("peak RSS through the run", "MB", peaks.get("tarhold", {}).get("tree_mb"),
                             peaks.get("verdaccio", {}).get("tree_mb"), checks=[Check("max", RSS_TARGET_MB)],
                             note=f"tarhold passed {RSS_TARGET_MB} MB during: {raised}" if raised else ""))
        self.rows += timeline_rows(self.raw.get("rss_after", []), phases)
