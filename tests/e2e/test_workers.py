"""`tarhold serve --workers N`: real processes sharing one port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import free_port

TARHOLD = str(Path(sys.executable).with_name("tarhold"))


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def ping(port: int) -> str:
    """Which worker answered one request on a fresh connection."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/-/ping", headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        return str(response.headers["X-Tarhold-Worker"])


def wait_for(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    (tmp_path / "tmp").mkdir()  # where the parent makes the metrics directory
    parent = subprocess.Popen(
        [TARHOLD, "serve", "--workers", "2", "--listen", f"127.0.0.1:{port}", "--storage", str(tmp_path / "s")],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
    )
    def started() -> bool:
        if parent.poll() is not None:  # it gave up: say why instead of waiting out the timeout
            log.flush()
            raise AssertionError(f"tarhold serve exited with {parent.returncode}:\n"
                                 + (tmp_path / "serve.log").read_text(errors="replace")[-3000:])
        return len(children_of(parent.pid)) == 2 and bool(ping(port))

    try:
        wait_for(started, "two workers to start")
        yield parent, port
    finally:
        if parent.poll() is None:
            parent.send_signal(signal.SIGTERM)
            try:
                parent.wait(15)
            except subprocess.TimeoutExpired:
                parent.kill()
                parent.wait()
        log.close()


def test_every_worker_answers_on_the_shared_port(workers: tuple[subprocess.Popen[bytes], int]) -> None:
    parent, port = workers
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while seen != {"0", "1"}:
        assert time.monotonic() < deadline, f"only workers {seen} ever answered"
        seen.add(ping(port))
    assert len(children_of(parent.pid)) == 2


def test_sigterm_ends_the_parent_and_every_worker(
    workers: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    parent, port = workers
    pids = children_of(parent.pid)
    metrics_dirs = list((tmp_path / "tmp").glob("tarhold-metrics-*"))
    assert len(metrics_dirs) == 1 and metrics_dirs[0].is_dir()
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(20) == 0
    wait_for(lambda: not any(alive(pid) for pid in pids), "the workers to exit", timeout=10)
    assert not metrics_dirs[0].exists()
    with pytest.raises(OSError):
        ping(port)


def test_a_worker_that_dies_stops_the_group_with_a_failure(
    workers: tuple[subprocess.Popen[bytes], int],
) -> None:
    parent, _ = workers
    first, second = children_of(parent.pid)
    os.kill(first, signal.SIGKILL)
    assert parent.wait(20) != 0
    wait_for(lambda: not alive(second), "the other worker to exit", timeout=10)
