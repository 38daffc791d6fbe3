"""A slowloris client cannot hold a real `tarhold serve` (issue 14, item 12).

Connections that trickle one header line at a time are closed after
`server.header_timeout`; one address cannot open more than
`server.max_connections_per_address`; an ordinary client is served
throughout. Everything talks to 127.0.0.1 only, with a bounded number of
sockets and a bounded time.
"""

from __future__ import annotations

import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.servers import ServerProcess, free_port

TARHOLD = Path(sys.executable).parent / "tarhold"
HOST = "127.0.0.1"
HEADER_TIMEOUT = 1.0
PER_ADDRESS = 8


@pytest.fixture
def guarded_tarhold(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    config = {
        "listen": f"{HOST}:{port}",
        "storage": str(tmp_path / "storage"),
        "server": {"header_timeout": f"{HEADER_TIMEOUT}s", "max_connections_per_address": PER_ADDRESS},
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    process = ServerProcess.spawn("tarhold", [str(TARHOLD), "serve", "-c", str(config_path)],
                                  cwd=tmp_path, log_dir=tmp_path)
    try:
        process.wait_until_ready(lambda: ping(port), timeout=30, what="GET /-/ping")
        yield port
    finally:
        process.stop()


def ping(port: int) -> int:
    with urllib.request.urlopen(f"http://{HOST}:{port}/-/ping", timeout=5) as response:  # noqa: S310 - loopback
        return int(response.status)


def trickling(port: int) -> socket.socket:
    """A connection that has sent a request line and one header, and no end of headers."""
    sock = socket.create_connection((HOST, port), timeout=5)
    sock.sendall(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n")
    return sock


def is_closed_by_server(sock: socket.socket, wait: float) -> bool:
    """Whether the server closed the connection within `wait` seconds (we keep trickling)."""
    deadline = time.monotonic() + wait
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"X-Slow: 1\r\n")
            if sock.recv(1) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: closed
            return True
    return False


def test_a_connection_that_never_finishes_its_headers_is_closed(guarded_tarhold: int) -> None:
    slow = [trickling(guarded_tarhold) for _ in range(3)]
    try:
        started = time.monotonic()
        assert all(is_closed_by_server(sock, wait=HEADER_TIMEOUT + 4) for sock in slow)
        assert time.monotonic() - started < HEADER_TIMEOUT + 4
        assert ping(guarded_tarhold) == 200
    finally:
        for sock in slow:
            sock.close()


def test_one_address_cannot_hold_more_than_its_connections(guarded_tarhold: int) -> None:
    held = [trickling(guarded_tarhold) for _ in range(PER_ADDRESS)]
    try:
        time.sleep(0.2)
        extra = socket.create_connection((HOST, guarded_tarhold), timeout=5)
        try:
            extra.sendall(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n\r\n")
            extra.settimeout(5)
            try:
                answer = extra.recv(100)
            except OSError:
                answer = b""
            assert answer == b""  # refused: closed without an answer
        finally:
            extra.close()
    finally:
        for sock in held:
            sock.close()
    # Once they are gone the address is served again.
    deadline = time.monotonic() + 5
    while True:
        try:
            assert ping(guarded_tarhold) == 200
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_complete_request_is_not_cut_by_the_header_deadline(guarded_tarhold: int) -> None:
    with socket.create_connection((HOST, guarded_tarhold), timeout=5) as sock:
        sock.sendall(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        time.sleep(HEADER_TIMEOUT + 0.5)  # kept alive past the deadline: still usable
        sock.sendall(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
