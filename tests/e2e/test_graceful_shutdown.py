"""A real `tarhold serve` stops the way a rolling update needs (issue 15).

On SIGTERM the process drains: a tarball streaming to a slow client and a
publish being uploaded finish, a request that starts afterwards is answered
503 at once, the wait is bounded by `server.drain_timeout`, and the exit
status is 0 — with one process and with `--workers 2`. Every server listens
on 127.0.0.1 and is signalled by the PID this test started.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry.ops.workers import STOP_MARGIN
from tests.e2e.fixtures import (
    HOST,
    TarholdServer,
    TarholdStorage,
    http_bytes,
    http_json,
    path_of,
    unique_name,
)
from tests.http.packages import make_tarball, publish_body, tarball_name

StartOn = Callable[..., TarholdServer]
REFUSAL = {"error": "tarhold is shutting down; retry on another instance"}
CHUNK = 16 * 1024
SMALL_BUFFER = 8 * 1024  # the client's SO_RCVBUF: the server cannot push the tarball into it ahead of time


@dataclass(frozen=True)
class Published:
    name: str
    version: str
    tarball: bytes

    @property
    def tarball_path(self) -> str:
        return f"{path_of(self.name)}/-/{tarball_name(self.name, self.version)}"


@pytest.fixture
def storage(tmp_path: Path) -> TarholdStorage:
    return TarholdStorage("embedded", directory=tmp_path / "storage")


def big_tarball(name: str, version: str, size: int = 6 * 1024 * 1024) -> bytes:
    """A tarball of a few MB that gzip cannot shrink much (hex of random bytes: about half)."""
    return make_tarball(name, version, files={"index.js": "module.exports = 1;\n",
                                              "data.txt": os.urandom(size // 2).hex()})


def publish_big(server: TarholdServer) -> Published:
    token = server.add_user(unique_name("drain"))
    name, version = unique_name("drain-pkg"), "1.0.0"
    tarball = big_tarball(name, version)
    status, body = http_json("PUT", server.url + path_of(name).lstrip("/"),
                             publish_body(name, version, tarball), token=token)
    assert status == 201, body
    return Published(name, version, tarball)


def slow_connection(port: int, receive_buffer: int = SMALL_BUFFER) -> http.client.HTTPConnection:
    """A client connection whose socket takes little at a time, like a slow mobile client."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(15)
    sock.connect((HOST, port))
    connection = http.client.HTTPConnection(HOST, port, timeout=15)
    connection.sock = sock
    return connection


def start_stream(port: int, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, bytes]:
    """GET `path` on a slow connection; the response and its first bytes."""
    connection = slow_connection(port)
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 200
    return connection, response, response.read(CHUNK)


def read_slowly(response: http.client.HTTPResponse, pause: float = 0.004) -> bytes:
    parts = []
    while chunk := response.read(CHUNK):
        parts.append(chunk)
        time.sleep(pause)
    return b"".join(parts)


def kept_alive(port: int) -> socket.socket:
    """A connection that was answered once and is now idle, kept alive."""
    sock = socket.create_connection((HOST, port), timeout=5)
    sock.sendall(b"GET /-/ping HTTP/1.1\r\nHost: tarhold\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    finally:
        sock.close()


def assert_refused(port: int, path: str = "/-/ping") -> None:
    """A request that starts now is answered 503 at once, telling the client to go elsewhere."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 503, body
        assert json.loads(body) == REFUSAL
        assert response.headers["Retry-After"] == "1"
        assert response.headers["Connection"].lower() == "close"
    finally:
        connection.close()
    assert time.monotonic() - started < 1.0


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """The exit status, and how long it took from now."""
    started = time.monotonic()
    code = process.wait(timeout)
    return code, time.monotonic() - started


def test_a_tarball_stream_in_flight_finishes_and_new_requests_get_503(
    storage: TarholdStorage, start_tarhold_on: StartOn
) -> None:
    server = start_tarhold_on(storage, config={"server": {"drain_timeout": "10s"}})
    package = publish_big(server)
    idle = kept_alive(server.port)
    connection, response, first = start_stream(server.port, package.tarball_path)
    signalled = time.monotonic()
    os.kill(server.process.pid, signal.SIGTERM)
    time.sleep(0.3)  # the signal handled: the server drains
    assert_refused(server.port)
    assert_refused(server.port, "/health")  # a load balancer's check sees it go
    assert closed_by_server(idle)
    assert server.process.process.poll() is None, "the server exited before the stream finished"
    rest = read_slowly(response)
    connection.close()
    body = first + rest
    assert len(body) == len(package.tarball)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(package.tarball).hexdigest()
    code, _ = wait_exit(server.process.process, timeout=10)
    assert code == 0, server.log()
    took = time.monotonic() - signalled
    assert took < 10, f"drain and exit took {took:.1f}s"
    log = server.log()
    assert "stopping: 1 request(s) in flight" in log, log  # the stream was still running
    assert "drained in" in log and "cut off" not in log, log


def test_a_publish_in_flight_completes_and_survives_a_restart(
    storage: TarholdStorage, start_tarhold_on: StartOn
) -> None:
    server = start_tarhold_on(storage, config={"server": {"drain_timeout": "10s"}})
    token = server.add_user(unique_name("drain"))
    name, version = unique_name("drain-put"), "1.0.0"
    tarball = big_tarball(name, version, size=2 * 1024 * 1024)
    body = json.dumps(publish_body(name, version, tarball)).encode()
    connection = http.client.HTTPConnection(HOST, server.port, timeout=15)
    connection.putrequest("PUT", path_of(name))
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    half = len(body) // 2
    connection.send(body[:half])
    time.sleep(0.5)  # the handler runs, reading the body
    os.kill(server.process.pid, signal.SIGTERM)
    time.sleep(0.3)
    assert_refused(server.port)
    connection.send(body[half:])
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    assert response.status == 201, answer
    code, _ = wait_exit(server.process.process, timeout=10)
    assert code == 0, server.log()
    assert "stopping: 1 request(s) in flight" in server.log()

    again = start_tarhold_on(storage)
    assert version in again.packument(name)["versions"]
    status, stored = http_bytes(again.url + f"{path_of(name).lstrip('/')}/-/{tarball_name(name, version)}")
    assert status == 200 and stored == tarball


def test_the_drain_timeout_bounds_a_client_that_never_reads(
    storage: TarholdStorage, start_tarhold_on: StartOn
) -> None:
    server = start_tarhold_on(storage, config={"server": {"drain_timeout": "1s"}})
    package = publish_big(server)
    connection, _, _ = start_stream(server.port, package.tarball_path)  # and never read again
    try:
        time.sleep(0.3)  # the socket buffers fill
        os.kill(server.process.pid, signal.SIGTERM)
        code, took = wait_exit(server.process.process, timeout=10)
    finally:
        connection.close()
    assert code == 0, server.log()
    assert 0.9 <= took < 5, f"exit took {took:.1f}s with a 1s drain timeout"
    assert "1 request(s) still in flight after" in server.log()
    assert "server.drain_timeout is 1s" in server.log()


def workers_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def two_workers(parent: int) -> list[int]:
    deadline = time.monotonic() + 10
    while len(workers := workers_of(parent)) != 2:
        assert time.monotonic() < deadline, "two workers never started"
        time.sleep(0.1)
    return workers


def alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_with_workers_sigterm_to_the_parent_drains_every_worker(
    storage: TarholdStorage, start_tarhold_on: StartOn
) -> None:
    server = start_tarhold_on(storage, args=["--workers", "2"], config={"server": {"drain_timeout": "10s"}})
    parent = server.process.process
    workers = two_workers(parent.pid)
    package = publish_big(server)
    connection, response, first = start_stream(server.port, package.tarball_path)
    os.kill(parent.pid, signal.SIGTERM)
    time.sleep(0.3)
    assert_refused(server.port)
    rest = read_slowly(response)
    connection.close()
    assert first + rest == package.tarball
    code, _ = wait_exit(parent, timeout=10)
    assert code == 0, server.log()
    assert not any(alive(pid) for pid in workers)
    log = server.log()
    assert "stopping: 1 request(s) in flight" in log, log  # the worker that served the stream
    assert log.count("drained in") == 2, log


def test_with_workers_a_worker_that_does_not_stop_in_time_is_killed(
    storage: TarholdStorage, start_tarhold_on: StartOn
) -> None:
    """The parent waits drain_timeout + STOP_MARGIN, then kills, and says so with its status."""
    server = start_tarhold_on(storage, args=["--workers", "2"], config={"server": {"drain_timeout": "0.5s"}})
    parent = server.process.process
    workers = two_workers(parent.pid)
    os.kill(workers[0], signal.SIGSTOP)  # a worker of ours that cannot react to SIGTERM
    os.kill(parent.pid, signal.SIGTERM)
    code, took = wait_exit(parent, timeout=15)
    assert code != 0, server.log()
    assert STOP_MARGIN <= took < 0.5 + STOP_MARGIN + 3, f"the parent took {took:.1f}s"
    assert "killing them" in server.log()
    assert not any(alive(pid) for pid in workers)
