"""`tarhold serve --workers N`: N forked processes sharing one port.

Each worker binds its own listening socket with SO_REUSEPORT, so the kernel
spreads connections over them; nothing is shared between workers but
storage. Their in-process caches stay correct because every cached read is
revalidated once it is older than `cache.packument_ttl`.

The parent does nothing but wait. On SIGTERM or SIGINT it sends SIGTERM to
every worker, which drains (`registry.http.draining`): requests in flight
finish, new ones get 503. Workers ignore SIGINT themselves — a Ctrl-C in a
terminal reaches the whole process group, and a second stop signal would
cut their drain short — so the parent alone decides; a second signal to the
parent is forwarded too, and does cut it short. The parent waits at most
`stop_timeout` (the drain timeout plus `STOP_MARGIN` for the cleanup after
it), SIGKILLs a worker still running then, and exits 0 only when every
worker exited 0. If a worker dies on its own it stops the others the same
way and exits non-zero (a supervisor then restarts the whole group).

Metrics run in prometheus_client's multi-process mode: the parent sets
PROMETHEUS_MULTIPROC_DIR to a fresh directory before forking (and removes it
when it exits). The metrics are built on first use in each worker
(`registry.http.metrics.metrics`), which picks the mode again then, so the
app may be imported before `run_workers` runs.
"""

from __future__ import annotations

import ctypes
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
# After a worker's drain timeout: closing the listener, cancelling what was
# cut off, closing storage clients. Past it the parent SIGKILLs the worker.
STOP_MARGIN = 5.0


def run_workers(count: int, serve: Callable[[int], int], *, stop_timeout: float | None = None) -> int:
    """Fork `count` processes running `serve(index)`; return the exit status for the parent.

    Once stopping, workers still running after `stop_timeout` seconds are
    killed (and the status is 1); None waits for them however long it takes.
    """
    metrics_dir = tempfile.mkdtemp(prefix="tarhold-metrics-")
    previous_env = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = metrics_dir
    children: dict[int, int] = {}  # pid -> worker index
    stopping = killed = False

    def stop_all(signum: int) -> None:
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def begin_stop() -> None:
        nonlocal stopping
        if not stopping and stop_timeout is not None:
            # SIGALRM interrupts the blocking waitpid below; its handler kills.
            signal.setitimer(signal.ITIMER_REAL, max(stop_timeout, 0.001))
        stopping = True
        stop_all(signal.SIGTERM)

    def forward(signum: int, frame: FrameType | None) -> None:
        begin_stop()

    def overdue(signum: int, frame: FrameType | None) -> None:
        nonlocal killed
        if children:
            killed = True
            LOG.error("workers %s still running %gs after the stop: killing them",
                      sorted(children.values()), stop_timeout)
            stop_all(signal.SIGKILL)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, overdue)
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
                # -SIGTERM: it was stopped before it could install its handler (still starting).
                if code not in (0, -signal.SIGTERM):
                    LOG.error("worker %d (pid %d) exited with status %d while stopping", index, pid, code)
                    failed = True
                continue
            LOG.error("worker %d (pid %d) exited with status %d; stopping the others", index, pid, code)
            failed = True
            begin_stop()
        return 1 if failed or killed else 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if previous_env is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous_env
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_child(index: int, serve: Callable[[int], int]) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until the server installs its drain
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards it as SIGTERM
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
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
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: a killed parent leaves workers to the supervisor
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
