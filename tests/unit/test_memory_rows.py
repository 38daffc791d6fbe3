"""The pure parts of bench/memory_rows.py: the generated tarball and the report."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from bench.memory_rows import TARGET_MB, Phase, report, write_tarball


def test_the_generated_tarball_has_the_size_and_integrity_it_declares(tmp_path: Path) -> None:
    path = tmp_path / "t.tgz"
    integrity = write_tarball(path, 3)
    data = path.read_bytes()
    assert len(data) == 3 * 1024 * 1024
    assert integrity == "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    assert data[:1024 * 1024] != data[1024 * 1024:2 * 1024 * 1024]  # not one block repeated


def test_the_report_marks_a_phase_over_the_target() -> None:
    phases = [Phase("in", 1.0, 0.8, 0.5, 10), Phase("out", 1.0, TARGET_MB + 1, 2.0, 10)]
    text = report({"size_mb": 1024, "baseline_mb": 72.5, "phases": [vars(p) for p in phases]})
    lines = text.splitlines()
    assert "1024 MB" in lines[0] and lines[2].endswith("ok") and lines[3].endswith("MISS")
