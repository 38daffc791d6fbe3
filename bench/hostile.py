"""Probe a running tarhold the way the hostile-input review did, and print what it answers.

    .venv/bin/python -m bench.hostile                      # this checkout's tarhold
    .venv/bin/python -m bench.hostile --source OTHER_TREE  # another checkout (say, an older commit)

Starts `tarhold serve` (from this checkout, or with OTHER_TREE first on
PYTHONPATH) on embedded storage in a temporary directory, on 127.0.0.1 at a
free port, with an uplink pointing at a closed loopback port; runs one probe
per review item and prints one line each: what came back and how long it
took. Everything stays on loopback and is bounded in count and time.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.http.packages import make_tarball, publish_body
from tests.support.bombs import zero_file_bomb

HOST = "127.0.0.1"
ADMIN_PASSWORD = "operator chose this"
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Registry:
    def __init__(self, port: int) -> None:
        self.base = f"http://{HOST}:{port}"

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> tuple[int, Any, float]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        elapsed = time.perf_counter() - started
        try:
            return status, json.loads(text or b"null"), elapsed
        except ValueError:
            return status, text.decode("utf-8", "replace"), elapsed

    def adduser(self, name: str, password: str = PASSWORD) -> str | None:
        status, body, _ = self.call("PUT", f"/-/user/org.couchdb.user:{name}", {"name": name, "password": password})
        return body.get("token") if status == 201 else None


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rows(db: Path, pk: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM items WHERE pk = ?", (pk,)).fetchone()[0])


def probes(reg: Registry, db: Path, port: int) -> list[tuple[str, Callable[[], str]]]:
    admin = basic("admin", ADMIN_PASSWORD)
    alice = reg.adduser("alice") or ""
    reg.adduser("bob")

    def item1() -> str:
        s, body, _ = reg.call("POST", "/-/tarhold/tokens", {"user": "admin", "grants": ["user:read+write=*"]}, admin)
        limited = body.get("token", "") if s == 201 else ""
        s2, minted, _ = reg.call("POST", "/-/tarhold/tokens", {"user": "admin"}, bearer(limited))
        token = minted.get("token", "") if s2 == 201 else ""
        s3, _, _ = reg.call("PUT", "/escalated", publish_body("escalated", "1.0.0"), bearer(token)) if token else (0, 0, 0)
        return f"mint with a user:* token {s2}; the minted token publishes {s3 or '-'}"

    def item2() -> str:
        s, body, t = reg.call("PUT", "/bomb", publish_body("bomb", "1.0.0", zero_file_bomb(256 * 1024 * 1024)),
                              bearer(alice))
        return f"255 KB -> 256 MiB bomb: {s} in {t:.2f} s"

    def item4() -> str:
        body = publish_body("negative", "1.0.0")
        body["versions"]["1.0.0"]["description"] = -1
        s, _, _ = reg.call("PUT", "/negative", body, bearer(alice))
        s2, _, _ = reg.call("GET", "/-/v1/search?text=anything")
        return f"publish description -1: {s}; search afterwards: {s2}"

    def item5() -> str:
        s, body, t = reg.call("PUT", "/guarded-new", publish_body("guarded-new", "1.0.0"), bearer(alice))
        return f"publish a new name, uplink unreachable: {s} in {t:.2f} s"

    def item6() -> str:
        reg.call("PUT", "/-/user/org.couchdb.user:warmup", {"name": "warmup", "password": "wrong password!"})
        known = reg.call("PUT", "/-/user/org.couchdb.user:alice", {"name": "alice", "password": "wrong password!"})
        unknown = reg.call("PUT", "/-/user/org.couchdb.user:nobody", {"name": "nobody", "password": "wrong password!"})
        return (f"registration closed: existing name {known[0]} in {known[2] * 1000:.0f} ms,"
                f" unknown {unknown[0]} in {unknown[2] * 1000:.0f} ms")

    def item7() -> str:
        reg.call("PUT", "/@private%2fsecret", publish_body("@private/secret", "1.0.0"), bearer(alice))
        existing = reg.call("PUT", "/@private%2fsecret/-rev/1-x", {"versions": {}})[0]
        missing = reg.call("PUT", "/@private%2fnothing/-rev/1-x", {"versions": {}})[0]
        return f"anonymous change: existing private {existing}, missing {missing}"

    def item8() -> str:
        before_access, before_login = rows(db, "ACCESS"), rows(db, "LOGIN")
        for i in range(300):
            reg.call("GET", f"/random-{os.urandom(4).hex()}")
        for _ in range(300):
            reg.call("POST", "/-/v1/login", {})
        time.sleep(1)
        return (f"300 GETs of random names: +{rows(db, 'ACCESS') - before_access} ACCESS rows;"
                f" 300 anonymous logins: +{rows(db, 'LOGIN') - before_login} LOGIN rows")

    def item9() -> str:
        reg.call("PUT", "/shaped", publish_body("shaped", "1.0.0"), bearer(alice))
        one = reg.call("PUT", "/shaped/-rev/1-x", {"_id": "shaped", "name": "shaped", "versions": 1}, bearer(alice))[0]
        deep = ('{"versions": ' + '{"a":[' * 300 + "1" + "]}" * 300 + "}").encode()
        nested = reg.call("PUT", "/nested", raw=deep, headers=bearer(alice))[0]
        return f"versions: 1 -> {one}; 300-deep body -> {nested}"

    def item10() -> str:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            data = json.dumps({"name": "escape", "version": "1.0.0"}).encode()
            info = tarfile.TarInfo("../package.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        s, _, _ = reg.call("PUT", "/escape", publish_body("escape", "1.0.0", gzip.compress(buffer.getvalue())),
                           bearer(alice))
        return f"tarball with ../package.json: {s}"

    def item11() -> str:
        reg.call("PUT", "/wordy", publish_body("wordy", "1.0.0", make_tarball(
            "wordy", "1.0.0", keywords=[f"k{i}" for i in range(900)]),
            keywords=[f"k{i}" for i in range(900)], description="d" * 16_000), bearer(alice))
        with sqlite3.connect(db) as conn:
            found = conn.execute("SELECT length(data) FROM items WHERE pk = 'PACKAGE' AND sk = 'wordy'").fetchone()
        return f"package list entry of a 900-keyword package: {found[0] if found else '-'} bytes"

    def item12() -> str:
        socks = []
        for _ in range(20):
            sock = socket.create_connection((HOST, port), timeout=5)
            sock.sendall(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n")
            socks.append(sock)
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:
            for sock in socks:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass
            time.sleep(1)
        still = 0
        for sock in socks:
            sock.settimeout(0.2)
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                still += sock.recv(1) != b""
            except TimeoutError:
                still += 1
            except OSError:
                pass
            sock.close()
        return f"20 slowloris connections, one header line a second: {still} still open after 14 s"

    def item14() -> str:
        s, body, _ = reg.call("POST", "/-/v1/login", {}, {"User-Agent": "npm/11.6.0 probe"})
        if s != 200:
            return f"login session: {s}"
        path = body["loginUrl"][len(reg.base):]
        _, page, _ = reg.call("GET", path)
        shows = "npm/11.6.0 probe" in str(page)
        return f"login page names the client that asked: {'yes' if shows else 'no'}"

    def item3() -> str:
        started = time.perf_counter()
        statuses: dict[int, int] = {}
        for i in range(60):
            status = reg.call("GET", "/-/whoami", headers=basic("bob", f"guess {i}"))[0]
            statuses[status] = statuses.get(status, 0) + 1
        return f"60 wrong Basic passwords in {time.perf_counter() - started:.1f} s: {statuses}"

    return [("1 token escalation", item1), ("2 tarball bomb", item2), ("4 bad description", item4),
            ("5 guard, uplink down", item5), ("6 enumeration", item6), ("7 private names", item7),
            ("8 anonymous growth", item8), ("9 malformed bodies", item9), ("10 ../package.json", item10),
            ("11 list entry size", item11), ("12 slowloris", item12), ("14 web login page", item14),
            ("3 password guessing", item3)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="another checkout to run tarhold from (its registry/ first on PYTHONPATH)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        storage, port, closed = Path(work) / "storage", free_port(), free_port()
        config = {
            "listen": f"{HOST}:{port}", "storage": str(storage), "auth": {"max_users": 3},
            "uplinks": {"up": {"url": f"http://{HOST}:{closed}", "timeout": "2s"}},
            "packages": {"@private/*": {"access": "alice", "publish": "alice"},
                         "guarded-*": {"access": "$all", "publish": "$authenticated", "proxy": "up"},
                         "**": {"access": "$all", "publish": "$authenticated"}},
        }
        (Path(work) / "config.yaml").write_text(json.dumps(config))
        env = {**os.environ, "TARHOLD_ADMIN_PASSWORD": ADMIN_PASSWORD}
        if args.source:
            env["PYTHONPATH"] = args.source
            entry = "from registry.cli import main; main()"
        else:
            entry = "from registry.ops.cli import main; main()"
        log = open(Path(work) / "serve.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen([sys.executable, "-c", entry, "serve", "-c", str(Path(work) / "config.yaml")],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, cwd=args.source or None)
        try:
            reg = Registry(port)
            for _ in range(100):
                try:
                    if reg.call("GET", "/-/ping")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.2)
            for label, probe in probes(reg, storage / ".tarhold-db.sqlite3", port):
                try:
                    print(f"{label:24s} {probe()}", flush=True)
                except Exception as exc:  # noqa: BLE001 - a probe that breaks says so and the rest go on
                    print(f"{label:24s} probe failed: {exc!r}", flush=True)
        finally:
            server.terminate()
            server.wait(30)
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
