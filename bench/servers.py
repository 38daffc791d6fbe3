"""The processes the benchmark starts, each on 127.0.0.1 and a free port, each
stopped by its own PID (see `tests.support.servers.ServerProcess`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.reference import nginx_config
from tests.support.servers import HOST, ROOT, ServerProcess, free_port
from tests.support.verdaccio import find_verdaccio, start_verdaccio, verdaccio_config

TARHOLD = Path(sys.executable).parent / "tarhold"
UPSTREAM_START_TIMEOUT = 120.0  # building the corpus takes seconds on a busy box


@dataclass
class Server:
    """A registry (or reference) under test."""

    name: str
    process: ServerProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop()


def _get_ok(url: str) -> None:
    with urllib.request.urlopen(url, timeout=5) as response:
        response.read()


def start_upstream(workdir: Path, tree_size: int, huge_versions: int, latency: float = 0.0) -> Server:
    """The fake upstream (`bench/upstream.py`), answering each request `latency` seconds late."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--tree-size", str(tree_size),
            "--huge-versions", str(huge_versions), "--latency", str(latency)]
    process = ServerProcess.spawn("upstream", argv, cwd=ROOT, log_dir=workdir)
    process.wait_until_ready(lambda: _get_ok(f"http://{HOST}:{port}/-/ping"), timeout=UPSTREAM_START_TIMEOUT,
                             what="/-/ping")
    return Server("upstream", process, port)


def tarhold_workers_supported() -> bool:
    """Whether this tarhold has `serve --workers N`."""
    done = subprocess.run([str(TARHOLD), "serve", "--help"], check=False, capture_output=True, text=True, timeout=30)
    return "--workers" in done.stdout


def start_tarhold(
    workdir: Path, storage: Path, upstream: str | None, *, name: str = "tarhold",
    store_section: dict[str, Any] | None = None, workers: int | None = None, policy: dict[str, Any] | None = None,
    uplink: dict[str, Any] | None = None,
) -> Server:
    """`tarhold serve` on `storage` (or on S3 + DynamoDB with `store_section`), proxying `upstream`,
    with `policy` as its `policy:` section and `uplink` added to the uplink's options when given.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    access: dict[str, Any] = {"access": "$all", "publish": "$authenticated", "unpublish": "$authenticated"}
    config: dict[str, Any] = {
        "listen": f"{HOST}:{port}",
        "storage": str(storage),
        "log": {"level": "warn"},
        "auth": {"max_users": 1000},
    }
    if upstream:
        access["proxy"] = "upstream"
        config["uplinks"] = {"upstream": {"url": upstream, "maxage": "10m", "timeout": "30s", **(uplink or {})}}
    config["packages"] = {"@*/*": dict(access), "**": dict(access)}
    if policy is not None:
        config["policy"] = policy
    if store_section is not None:
        config["store"] = {"aws-s3-storage": store_section}
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    argv = [str(TARHOLD), "serve", "-c", str(config_path), "--listen", f"{HOST}:{port}"]
    if workers:
        argv += ["--workers", str(workers)]
    process = ServerProcess.spawn(name, argv, cwd=workdir, log_dir=workdir)
    process.wait_until_ready(lambda: _get_ok(f"http://{HOST}:{port}/-/ping"), timeout=60, what="/-/ping")
    return Server(name, process, port)


def verdaccio_installed() -> bool:
    return find_verdaccio() is not None


def start_verdaccio_proxy(workdir: Path, upstream: str | None) -> Server:
    port = free_port()
    config = verdaccio_config(workdir / "storage", uplink=upstream)
    config["max_body_size"] = "100mb"
    config["log"] = {"type": "stdout", "format": "pretty", "level": "error"}
    process = start_verdaccio(workdir, port, config)
    return Server("verdaccio", process, port)


def start_reference(workdir: Path, root: Path, *, from_files: bool = False) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.reference", "--port", str(port), "--root", str(root)]
    name = "aiohttp-files" if from_files else "aiohttp"
    if from_files:
        argv.append("--files")
    process = ServerProcess.spawn(name, argv, cwd=ROOT, log_dir=workdir)
    process.wait_until_ready(lambda: _probe(port), timeout=30, what="a TCP answer")
    return Server(name, process, port)


def _probe(port: int) -> None:
    with socket.create_connection((HOST, port), timeout=2):
        pass


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def start_nginx(workdir: Path, root: Path) -> Server | None:
    binary = nginx_binary()
    if binary is None:
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "nginx.conf"
    config.write_text(nginx_config(root, port, workdir))
    process = ServerProcess.spawn("nginx", [binary, "-c", str(config), "-p", str(workdir)], cwd=workdir,
                                  log_dir=workdir)
    process.wait_until_ready(lambda: _probe(port), timeout=30, what="a TCP answer")
    return Server("nginx", process, port)
