"""The benchmark harness's pure parts: /proc parsing, wrk output, medians,
targets, the table, the npm ci lockfile, the policy rows' config and check,
the RSS timeline, profile file names, the gzip reference, the redirect check
and `BENCH_ROWS`. No servers are started.
"""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import semver

from bench.corpus import FULL, TREE_ROOT, _satisfies, lockfile, rewrite_resolved
from bench.load import LoadResult, parse_size, parse_wrk
from bench.policy_row import (
    BLOCKED,
    check_policy_applied,
    count_versions,
    policy_section,
)
from bench.procstat import parse_stat, parse_status_kb, sum_status_mb, tree_rss_mb
from bench.profiles import format_top, profile_paths
from bench.redirect_rows import bytes_per_answer, redirect_problem
from bench.reference import response_headers
from bench.report import Check, Row, format_table, median, selected_rows, top_frames
from bench.rss_rows import merge_phase, timeline_rows
from bench.scenarios import SCENARIOS, check_encoding
from registry.domain.policy import visible
from registry.domain.policy_rules import parse_policy_section
from tests.support.fake_upstream_docs import build_version
from tests.support.fake_upstream_sets import large_versions, tree_spec

STAT = (
    "4242 (tar hold) (x) S 4000 4242 4242 0 -1 4194560 1234 0 0 0 "
    "250 50 30 20 20 0 3 0 12345 123456789 5000 18446744073709551615"
)

WRK = """\
Running 3s test @ http://127.0.0.1:4873/bench-full
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.02ms    2.10ms  30.00ms   90.00%
    Req/Sec     1.45k   100.00     1.60k    70.00%
  4350 requests in 3.00s, 3.09GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1449.50
Transfer/sec:      1.03GB
"""


def test_stat_line_with_spaces_and_parentheses_in_the_name_is_parsed():
    stat = parse_stat(STAT, ticks=100)
    assert (stat.pid, stat.ppid) == (4242, 4000)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (2.5, 0.5, 0.3, 0.2)
    assert stat.cpu == 3.5


def test_status_value_in_kb_and_zero_when_absent():
    text = "Name:\ttarhold\nVmHWM:\t  91234 kB\nVmRSS:\t  80000 kB\n"
    assert parse_status_kb(text, "VmHWM") == 91234
    assert parse_status_kb(text, "VmSwap") == 0


def test_current_rss_sums_vmrss_over_the_tree_and_counts_gone_processes_as_zero():
    worker = "Name:\ttarhold\nVmHWM:\t  91234 kB\nVmRSS:\t  81920 kB\n"
    zombie = "Name:\ttarhold\nState:\tZ (zombie)\n"
    assert sum_status_mb([worker, worker, zombie, None], "VmRSS") == 160.0
    assert sum_status_mb([], "VmRSS") == 0.0
    assert tree_rss_mb(os.getpid()) > 1  # this test's own process, read from /proc


def test_wrk_summary_gives_requests_seconds_bytes_and_errors():
    result = parse_wrk(WRK)
    assert (result.requests, result.seconds, result.errors) == (4350, 3.0, 7)
    assert result.rps == 1450.0
    assert result.bytes_per_second == 1.03 * 1024**3
    assert parse_size("512.00KB") == 512 * 1024


def test_median_ignores_missing_runs():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, None, 4.0]) == 2.5  # type: ignore[list-item]
    assert median([]) is None


def test_checks_compare_against_verdaccio_reference_and_absolute_targets():
    row = Row("full", "req/s", tarhold=1000.0, verdaccio=10.0, reference=1200.0, reference_name="aiohttp",
              checks=[Check("vs_min", 50), Check("ref_min", 0.7)])
    assert row.ratio == 100.0
    assert row.verdict() == "ok"
    assert Row("cpu", "ms", tarhold=0.6, checks=[Check("max", 0.5)]).verdict() == "MISS"
    assert Row("wall", "s", tarhold=9.0, verdaccio=10.0, checks=[Check("vs_max", 0.8)]).verdict() == "MISS"
    assert Row("no verdaccio", "req/s", tarhold=1.0, checks=[Check("vs_min", 5)]).verdict() == "n/a"


def test_table_has_one_line_per_row_aligned_with_notes_below():
    rows = [
        Row("full packument", "req/s", 1234.5, 20.0, 1500.0, "aiohttp", [Check("vs_min", 50)]),
        Row("workers", "req/s", note="skipped"),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split()[:4] == ["scenario", "unit", "tarhold", "Verdaccio"]
    assert "1,234" in lines[2] and "61.73×" in lines[2] and "82%" in lines[2] and lines[2].endswith("ok")
    assert lines[3].startswith("workers") and "-" in lines[3]
    assert lines[-1] == "- workers: skipped"
    # numbers right-aligned under their header
    assert lines[0].index("tarhold") + len("tarhold") == lines[2].index("1,234") + len("1,234")


def test_lockfile_installs_every_tree_package_once_with_the_served_integrity():
    registry = "http://127.0.0.1:4873"
    package_json, lock = lockfile(12, registry + "/")
    spec = tree_spec(TREE_ROOT, 12)
    packages = lock["packages"]
    assert lock["lockfileVersion"] == 3
    assert package_json["dependencies"] == packages[""]["dependencies"] == {TREE_ROOT: "^1.0.0"}
    assert {key.removeprefix("node_modules/") for key in packages if key} == set(spec)
    leaf = packages[f"node_modules/{TREE_ROOT}-leaf"]
    assert leaf["version"] == "1.4.1"  # the newest 1.x; latest (2.0.0) satisfies no dependent
    manifest, _ = build_version(f"{TREE_ROOT}-leaf", "1.4.1", spec[f"{TREE_ROOT}-leaf"]["1.4.1"], None)
    assert leaf["integrity"] == manifest["dist"]["integrity"]
    assert leaf["resolved"] == f"{registry}/{TREE_ROOT}-leaf/-/{TREE_ROOT}-leaf-1.4.1.tgz"
    scoped = packages[f"node_modules/@{TREE_ROOT}/scoped"]
    assert scoped["resolved"] == f"{registry}/@{TREE_ROOT}/scoped/-/scoped-1.0.0.tgz"
    assert packages[f"node_modules/{TREE_ROOT}-cli"]["bin"]


def test_resolved_urls_are_rewritten_per_registry():
    _, lock = lockfile(8, "http://127.0.0.1:1")
    moved = rewrite_resolved(lock, "http://127.0.0.1:2/")
    resolved = [entry["resolved"] for entry in moved["packages"].values() if "resolved" in entry]
    assert resolved and all(url.startswith("http://127.0.0.1:2/") and "//" not in url[7:] for url in resolved)
    assert lock["packages"][f"node_modules/{TREE_ROOT}"]["resolved"].startswith("http://127.0.0.1:1/")


def test_ranges_as_the_tree_writes_them():
    version = semver.Version.parse("1.4.1")
    assert all(_satisfies(version, wanted) for wanted in ("^1.0.0", "~1.4.0", ">=1.1.0 <2.0.0", "1.x"))
    assert not _satisfies(version, "~1.2.0") and not _satisfies(semver.Version.parse("2.0.0"), "^1.0.0")


def test_profile_top_counts_self_samples_of_the_top_frame():
    raw = "main;serve;write (a.py:1) 30\nmain;serve;dumps (b.py:2) 10\nmain;write (a.py:1) 10\n"
    top = top_frames(raw)
    assert top[0] == ("write (a.py:1)", 40, 0.8)
    assert top[1][0] == "dumps (b.py:2)"


def test_profile_files_per_workload_are_named_by_key():
    paths = profile_paths("20261207T170547Z", "small-tarball", Path("/r"))
    assert {fmt: str(path) for fmt, path in paths.items()} == {
        "flamegraph": "/r/20261207T170547Z-profile-small-tarball.svg",
        "raw": "/r/20261207T170547Z-profile-small-tarball.txt",
        "top": "/r/20261207T170547Z-profile-small-tarball-top.txt",
    }
    lines = format_top([("write (a.py:1)", 40, 0.8), ("dumps (b.py:2)", 10, 0.2)]).splitlines()
    assert lines[0].split() == ["self", "samples", "share", "frame"]
    assert lines[1].split() == ["40", "80.0%", "write", "(a.py:1)"]


# -- the RSS timeline -------------------------------------------------------------


def test_a_phase_measured_one_server_at_a_time_stays_one_entry():
    entries: list[dict[str, Any]] = []
    merge_phase(entries, "npm ci", {"tarhold": 80.0})
    merge_phase(entries, "warming", {"tarhold": 82.0, "verdaccio": 150.0})
    merge_phase(entries, "npm ci", {"verdaccio": 140.0})
    assert entries == [{"phase": "npm ci", "tarhold": 80.0, "verdaccio": 140.0},
                       {"phase": "warming", "tarhold": 82.0, "verdaccio": 150.0}]


def test_rss_timeline_has_one_row_per_phase_and_notes_the_peaks_that_rose():
    current = [{"phase": "npm ci", "tarhold": 80.0, "verdaccio": 140.0},
               {"phase": "full packument (S3+DynamoDB)", "tarhold-s3": 90.0},
               {"phase": "warming", "tarhold": 78.5, "verdaccio": 150.0},
               {"phase": "small tarball", "tarhold": 79.0}]
    peaks = [{"phase": "npm ci", "tarhold": 95.0, "verdaccio": 180.4},
             {"phase": "full packument (S3+DynamoDB)", "tarhold-s3": 99.0},
             {"phase": "warming", "tarhold": 120.0, "verdaccio": 180.6},
             {"phase": "small tarball", "tarhold": 120.0}]
    rows = timeline_rows(current, peaks)
    # other instances' phases are in the results file only
    assert [row.label for row in rows] == ["RSS after npm ci", "RSS after warming", "RSS after small tarball"]
    assert (rows[0].unit, rows[0].tarhold, rows[0].verdaccio) == ("MB", 80.0, 140.0)
    assert rows[0].note == "peak rose to (MB): tarhold 95, Verdaccio 180"
    assert rows[1].note == "peak rose to (MB): tarhold 120"  # Verdaccio's moved by less than 1 MB
    assert (rows[2].verdaccio, rows[2].note) == (None, "")
    assert rows[0].verdict() == ""  # the target is on the peak row


# -- the references ---------------------------------------------------------------


def test_reference_serves_gz_files_as_stored_with_content_encoding():
    assert response_headers(Path("abbreviated.json.gz")) == {
        "Content-Type": "application/json", "Content-Encoding": "gzip"}
    assert response_headers(Path("full.json")) == {"Content-Type": "application/json"}
    assert response_headers(Path("small.tgz")) == {"Content-Type": "application/octet-stream"}


def test_reference_bytes_must_be_encoded_as_the_scenario_asks():
    gzip_headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
    check_encoding(gzip_headers, "gzip", gzip.compress(b"{}"))
    check_encoding({"Accept": "application/json"}, None, b"{}")
    with pytest.raises(RuntimeError, match="gzip asked"):
        check_encoding(gzip_headers, None, b"{}")  # tarhold sent it plain
    with pytest.raises(RuntimeError, match="gzip asked"):
        check_encoding(gzip_headers, "gzip", b"{}")  # decoded on the way: not the bytes on the wire
    with pytest.raises(RuntimeError, match="unasked"):
        check_encoding({}, "gzip", gzip.compress(b"{}"))


def test_packument_rows_aim_at_90_percent_of_the_reference_and_gzip_has_one():
    by_key = {scenario.key: scenario for scenario in SCENARIOS}
    for key in ("full", "abbreviated", "abbreviated_gzip"):
        assert Check("ref_min", 0.9) in by_key[key].checks and by_key[key].reference_kind == "memory"
    assert by_key["abbreviated_gzip"].reference_file == "abbreviated.json.gz"
    assert by_key["small_tarball"].checks == [Check("vs_min", 5), Check("ref_min", 0.8)]


# -- the redirect rows ------------------------------------------------------------


def test_redirect_check_wants_a_307_to_loopback_serving_the_tarball():
    body = b"tarball bytes"
    local = "http://127.0.0.1:8333/tarhold-redirect/redirect/x.tgz?X-Amz-Signature=abc"
    assert redirect_problem(307, local, body, body) is None
    assert redirect_problem(200, None, body, body) == "answered 200, not 307"
    assert redirect_problem(307, None, body, body) == "a 307 without a Location"
    assert "not on 127.0.0.1" in str(redirect_problem(307, "http://localhost/x.tgz", body, body))
    assert "not the tarball" in str(redirect_problem(307, local, b"other", body))


def test_bytes_per_answer_tells_redirects_from_tarballs():
    assert bytes_per_answer(LoadResult(requests=1000, seconds=2.0, bytes_per_second=150_000.0, errors=0)) == 300.0
    assert bytes_per_answer(LoadResult(requests=0, seconds=2.0, bytes_per_second=0.0, errors=0)) == 0.0


# -- the policy rows --------------------------------------------------------------

START = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)


def corpus_like_document(count: int) -> dict[str, Any]:
    """A packument shaped as the corpus gives bench-full: its version numbers, a minute apart."""
    versions = list(large_versions(FULL, count))
    times = {version: (START + timedelta(minutes=index)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
             for index, version in enumerate(versions)}
    return {
        "name": FULL,
        "dist-tags": {"latest": versions[-1]},
        "versions": {version: {"name": FULL, "version": version} for version in versions},
        "time": {"created": times[versions[0]], "modified": times[versions[-1]], **times},
    }


def test_policy_section_blocks_the_range_and_quarantines_the_newest_versions_now():
    doc = corpus_like_document(130)
    now = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
    section = policy_section(doc["time"], now, quarantined=10)
    assert section["**"]["block"] == [{"package": FULL, "versions": BLOCKED, "reason": "bench: a blocked range"}]
    policy = parse_policy_section(section).policy_for(FULL)
    verdict = visible(doc, policy, now, local=False)
    blocked = {f"1.0.{patch}" for patch in range(10)}
    newest = set(list(doc["versions"])[-10:])
    assert set(verdict.hidden) == blocked | newest
    assert sorted(check_policy_applied(doc, verdict.doc)) == sorted(blocked | newest)
    assert count_versions(verdict.doc) == 130 - 20
    # The boundary lies halfway between two publish times: the oldest held comes out after 30 s.
    assert set(visible(doc, policy, now + timedelta(seconds=29), local=False).hidden) == blocked | newest
    later = visible(doc, policy, now + timedelta(seconds=31), local=False)
    assert len(set(later.hidden) - blocked) == 9
    assert check_policy_applied(doc, later.doc)  # the newest stays hidden longest


def test_policy_section_refuses_a_document_too_short_to_quarantine():
    doc = corpus_like_document(3)
    with pytest.raises(ValueError, match="too few"):
        policy_section(doc["time"], datetime.now(UTC), quarantined=3)


def test_policy_check_fails_loudly_when_the_policy_changed_nothing():
    doc = corpus_like_document(130)
    with pytest.raises(RuntimeError, match="hid nothing"):
        check_policy_applied(doc, doc)
    only_block = {**doc, "versions": {v: m for v, m in doc["versions"].items() if not v.startswith("1.0.")}}
    with pytest.raises(RuntimeError, match="quarantine the newest"):
        check_policy_applied(doc, only_block)
    newest = list(doc["versions"])[-1]
    only_age = {**doc, "versions": {v: m for v, m in doc["versions"].items() if v != newest}}
    with pytest.raises(RuntimeError, match="block"):
        check_policy_applied(doc, only_age)


def test_bench_rows_names_parts_of_the_run():
    assert selected_rows(None) is None and selected_rows(" , ") is None
    assert selected_rows("policy") == {"policy"}
    assert selected_rows("redirect,profile") == {"redirect", "profile"}
    assert selected_rows("HTTP, policy") == {"http", "policy"}
    with pytest.raises(ValueError, match="polcy"):
        selected_rows("polcy")
