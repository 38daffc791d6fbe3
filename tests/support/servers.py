"""Server processes the tests start, on ports picked free on 127.0.0.1.

`ServerProcess.spawn` runs one server with its output in a log file;
`wait_until_ready` waits (bounded) until it answers a real request, and
`stop()` ends exactly the process it started: SIGTERM, a wait, SIGKILL if it
lingers. A server that does not come up raises `ServerStartError` carrying
the process's captured output, so a broken setup reads as one clear failure.
The S3 and DynamoDB servers built on this are in `tests.support.aws_servers`,
Verdaccio in `tests.support.verdaccio`.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

START_TIMEOUT = 60.0  # seconds; a cold JVM or SeaweedFS on a slow CI box
STOP_TIMEOUT = 15.0
OUTPUT_TAIL = 4000  # characters of captured output quoted in an error


class ServerStartError(RuntimeError):
    """A test server did not start or did not answer in time."""


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now.

    All sockets stay bound until every port is chosen, so the ports differ;
    another process could still take one before the server binds it, which
    on a test machine is rare enough to accept.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


@dataclass
class ServerProcess:
    """A server process this session started, with its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)
    # Files the server leaves behind outside its work directory, removed on stop.
    leftovers: list[Path] = field(default_factory=list)

    @classmethod
    def spawn(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        log_dir: Path,
    ) -> ServerProcess:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in the terminal reaches pytest,
                # which then stops the server through stop(), in order.
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            raise ServerStartError(f"{name}: cannot run {argv[0]}: {exc}") from exc
        return cls(name, process, log_path, log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """The tail of what the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        try:
            text = self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return "(no output captured)"
        return text[-OUTPUT_TAIL:] if text else "(no output)"

    def wait_until_ready(
        self, probe: Callable[[], object], *, timeout: float = START_TIMEOUT, what: str = ""
    ) -> None:
        """Call `probe` until it returns without raising; fail with the output otherwise."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise ServerStartError(
                    f"{self.name} exited with status {code} before it answered"
                    f" (log {self.log_path}):\n{self.output()}"
                )
            try:
                probe()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet; retried until the deadline
                last_error = exc
            time.sleep(0.2)
        self.stop()
        raise ServerStartError(
            f"{self.name} (pid {self.pid}) did not answer {what or 'its readiness probe'}"
            f" within {timeout:.0f}s; last error: {last_error!r} (log {self.log_path}):\n"
            f"{self.output()}"
        )

    def stop(self) -> None:
        """End the process this handle started: SIGTERM, wait, then SIGKILL."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(STOP_TIMEOUT)
        finally:
            self._log.close()
            for path in self.leftovers:
                if path.is_socket():
                    path.unlink(missing_ok=True)
