"""Rows of the benchmark's one table: medians, ratios, targets, formatting; which parts a run makes."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# What `BENCH_ROWS` can name: each a part of the run (see bench/README.md).
ROW_GROUPS = ("npm", "http", "profile", "publish", "workers", "rss", "s3", "redirect", "policy", "search")


def selected_rows(text: str | None) -> frozenset[str] | None:
    """`BENCH_ROWS` (comma-separated parts, e.g. `policy` or `http,policy`) as a set; None: every part."""
    names = frozenset(part.strip().lower() for part in (text or "").split(",") if part.strip())
    unknown = sorted(names - set(ROW_GROUPS))
    if unknown:
        raise ValueError(f"BENCH_ROWS: unknown part(s) {', '.join(unknown)} (known: {', '.join(ROW_GROUPS)})")
    return names or None


def median(values: Sequence[float]) -> float | None:
    """The median of the runs that produced a number (None when none did)."""
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


@dataclass(frozen=True)
class Check:
    """One target of a row.

    kind: `vs_min` tarhold/Verdaccio ≥ value (higher is better), `vs_max`
    tarhold/Verdaccio ≤ value (lower is better), `ref_min` tarhold/reference
    ≥ value, `max` tarhold ≤ value, `min` tarhold ≥ value.
    """

    kind: str
    value: float

    def passes(self, row: Row) -> bool | None:
        t, v, r = row.tarhold, row.verdaccio, row.reference
        if t is None:
            return None
        if self.kind == "max":
            return t <= self.value
        if self.kind == "min":
            return t >= self.value
        if self.kind in ("vs_min", "vs_max"):
            if not v:
                return None
            return t / v >= self.value if self.kind == "vs_min" else t / v <= self.value
        if self.kind == "ref_min":
            return (t / r >= self.value) if r else None
        raise ValueError(f"unknown check kind {self.kind!r}")

    def describe(self) -> str:
        return {
            "vs_min": f"≥{self.value:g}× V",
            "vs_max": f"≤{self.value:g}× V",
            "ref_min": f"≥{self.value:.0%} ref",
            "max": f"≤{self.value:g}",
            "min": f"≥{self.value:g}",
        }[self.kind]


@dataclass
class Row:
    """One line of the table: a scenario's median for each server."""

    label: str
    unit: str
    tarhold: float | None = None
    verdaccio: float | None = None
    reference: float | None = None
    reference_name: str = ""
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """tarhold ÷ Verdaccio, as measured (read it with the unit: higher req/s
        is better, lower seconds is better)."""
        if self.tarhold is None or not self.verdaccio:
            return None
        return self.tarhold / self.verdaccio

    @property
    def of_reference(self) -> float | None:
        if self.tarhold is None or not self.reference:
            return None
        return self.tarhold / self.reference

    def verdict(self) -> str:
        results = [check.passes(self) for check in self.checks]
        if not results:
            return ""
        if any(result is False for result in results):
            return "MISS"
        if any(result is None for result in results):
            return "n/a"
        return "ok"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [check.describe() for check in self.checks]
        data.update(ratio=self.ratio, of_reference=self.of_reference, verdict=self.verdict())
        return data


def fmt(value: float | None) -> str:
    """A number in 4 significant digits or so; '-' for no measurement."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


HEADERS = ("scenario", "unit", "tarhold", "Verdaccio", "ratio", "reference", "% ref", "target", "")


def format_table(rows: Sequence[Row]) -> str:
    """The rows as one plain-text table (monospace, right-aligned numbers)."""
    cells = [list(HEADERS)]
    for row in rows:
        ratio = f"{row.ratio:.2f}×" if row.ratio is not None else "-"
        reference = f"{fmt(row.reference)} {row.reference_name}".strip() if row.reference else "-"
        of_ref = f"{row.of_reference:.0%}" if row.of_reference is not None else "-"
        targets = ", ".join(check.describe() for check in row.checks)
        cells.append(
            [row.label, row.unit, fmt(row.tarhold), fmt(row.verdaccio), ratio, reference, of_ref, targets, row.verdict()]
        )
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADERS))]
    lines = []
    for index, line in enumerate(cells):
        parts = [
            cell.ljust(width) if column in (0, 1, 7, 8) else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    notes = [f"- {row.label}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def top_frames(raw: str, limit: int = 25) -> list[tuple[str, int, float]]:
    """The frames most often on top of the stack, from py-spy's raw (collapsed) output."""
    counts: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frame = stack.split(";")[-1]
        counts[frame] = counts.get(frame, 0) + int(number)
        total += int(number)
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:limit]
    return [(frame, count, count / total) for frame, count in ranked]
