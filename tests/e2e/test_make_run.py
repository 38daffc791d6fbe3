"""`make run` on a clean checkout starts the embedded default and answers /-/ping."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ["Makefile", "pyproject.toml", "README.md", "registry", "storage", "uplinks"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_make_run_serves_ping_from_a_clean_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, checkout / name)
    # Reuse this run's virtualenv (already installed by `make test`) instead of
    # installing a second one: the Makefile's run target is under test, not
    # pip. PIP_NO_INDEX makes a needless reinstall fail loudly, not download.
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    port = free_port()
    proc = subprocess.Popen(
        ["make", "run", f"RUN_LISTEN=127.0.0.1:{port}"],
        cwd=checkout,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "TARHOLD_CONFIG": "", "PIP_NO_INDEX": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ping", timeout=2) as resp:
                    body = resp.read()
                    break
            except OSError:
                time.sleep(0.3)
    finally:
        # make and the server share a new process group this test created.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
    assert body == b"{}", f"no answer from make run; it said:\n{output}"
    assert (checkout / "data" / ".tarhold-db.sqlite3").exists()
    assert f"http://127.0.0.1:{port}/" in output
    assert "npm config set registry" in output
