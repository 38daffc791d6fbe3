"""`tarhold serve --workers N`: N forked processes sharing one port.

Each worker binds its own listening socket with SO_REUSEPORT, so the kernel
spreads connections over them; nothing is shared between workers but
storage. Their in-process caches stay correct because every cached read is
revalidated once it is older than `cache.packument_ttl`.

The parent does nothing but wait: it forwards SIGTERM/SIGINT to the workers,
waits for them, and if a worker dies on its own it stops the others and
exits non-zero (a supervisor then restarts the whole group).

Metrics run in prometheus_client's multi-process mode: the parent sets
PROMETHEUS_MULTIPROC_DIR to a fresh directory before forking (and removes it
when it exits). The metrics are built on first use in each worker
(`registry.http.metrics.metrics`), which picks the mode again then, so the
app may be imported before `run_workers` runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from types import FrameType

LOG = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1


def run_workers(count: int, serve: Callable[[int], int]) -> int:
    """Fork `count` processes running `serve(index)`; return the exit status for the parent."""
    metrics_dir = tempfile.mkdtemp(prefix="tarhold-metrics-")
    previous_env = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = metrics_dir
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def stop_all(signum: int) -> None:
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        stop_all(signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        for index in range(count):
            if stopping:
                break
            pid = os.fork()
            if pid == 0:
                _run_child(index, serve)  # never returns
            children[pid] = index
        failed = False
        while children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            index = children.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                    LOG.error("worker %d (pid %d) exited with status %d while stopping", index, pid, code)
                    failed = True
                continue
            LOG.error("worker %d (pid %d) exited with status %d; stopping the others", index, pid, code)
            failed = stopping = True
            stop_all(signal.SIGTERM)
        return 1 if failed else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if previous_env is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous_env
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_child(index: int, serve: Callable[[int], int]) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    _die_with_parent()
    code = 1
    try:
        code = int(serve(index) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the worker must report and exit, never return to the parent's code
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the parent dies (say, from SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: a killed parent leaves workers to the supervisor
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
