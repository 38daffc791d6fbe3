"""Server CPU time and memory (peak and current RSS) from /proc, for a process and its descendants."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/<pid>/stat the benchmark uses (times in seconds)."""

    pid: int
    ppid: int
    utime: float
    stime: float
    cutime: float
    cstime: float

    @property
    def cpu(self) -> float:
        """CPU of the process itself plus its children that have exited."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str, ticks: int = CLOCK_TICKS) -> Stat:
    """Parse one /proc/<pid>/stat line. The command name (2nd field) is in
    parentheses and may hold spaces or parentheses: split after the last ')'.
    """
    pid = int(text[: text.index("(")].strip())
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): field n is rest[n - 3].
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(rest[n - 3]) / ticks for n in (14, 15, 16, 17))
    return Stat(pid, ppid, utime, stime, cutime, cstime)


def parse_status_kb(text: str, key: str) -> int:
    """A `Key:   1234 kB` value of /proc/<pid>/status, in kB (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """`pid` and every live process under it (worker processes, for one)."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(entry / "stat")
        if text is None:
            continue
        try:
            stat = parse_stat(text)
        except (ValueError, IndexError):
            continue
        parents.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = [pid], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu(pid: int) -> float:
    """Seconds of CPU used so far by `pid` and its descendants (live and reaped)."""
    total = 0.0
    for member in descendants(pid):
        text = _read(PROC / str(member) / "stat")
        if text is not None:
            total += parse_stat(text).cpu
    return total


def tree_peak_rss_mb(pid: int) -> tuple[float, float]:
    """(largest VmHWM of one process, sum of VmHWM over the tree), in MB."""
    peaks = []
    for member in descendants(pid):
        text = _read(PROC / str(member) / "status")
        if text is not None:
            peaks.append(parse_status_kb(text, "VmHWM") / 1024)
    return (max(peaks, default=0.0), sum(peaks))


def sum_status_mb(texts: Iterable[str | None], key: str) -> float:
    """`key` (e.g. VmRSS) summed over /proc/<pid>/status texts, in MB. A process
    that exited meanwhile (None) or has no such line (a zombie) counts 0.
    """
    return sum(parse_status_kb(text, key) for text in texts if text is not None) / 1024


def tree_rss_mb(pid: int) -> float:
    """Current resident memory (VmRSS) of `pid` and its descendants, summed, in MB."""
    return sum_status_mb((_read(PROC / str(member) / "status") for member in descendants(pid)), "VmRSS")


def wait_idle(pid: int, *, interval: float = 0.5, busy: float = 0.1, timeout: float = 120.0) -> float:
    """Wait until `pid` (and descendants) use less than `busy` of a core over
    `interval`: a server still working off requests the load generator gave
    up on would slow the next measurement. Returns the seconds waited.
    """
    started = time.monotonic()
    last = tree_cpu(pid)
    while time.monotonic() - started < timeout:
        time.sleep(interval)
        now = tree_cpu(pid)
        if now - last < busy * interval:
            break
        last = now
    return time.monotonic() - started
