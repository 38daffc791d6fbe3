"""The `tarhold` command: init and serve against the moto server, and config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import unique
from tests.support.aws_servers import AwsEndpoint
from tests.support.servers import free_port

TARHOLD = str(Path(sys.executable).with_name("tarhold"))


def write_config(path: Path, **config: Any) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TARHOLD, *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TARHOLD_CONFIG": ""},
    )


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_init_then_serve_on_s3_and_dynamodb(moto_server: AwsEndpoint, tmp_path: Path) -> None:
    port = free_port()
    section = {
        **moto_server.s3_section(unique("tarhold-cli")),
        **moto_server.dynamodb_section(unique("tarhold-cli")),
    }
    config = write_config(
        tmp_path / "config.yaml", listen=f"127.0.0.1:{port}", store={"aws-s3-storage": section}
    )
    first = run("init", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    policy = json.loads(first.stdout[first.stdout.index("{"):])
    actions = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"s3:GetObject", "s3:PutObject", "dynamodb:Query", "dynamodb:UpdateItem"} <= actions
    again = run("init", "-c", str(config))
    assert again.returncode == 0 and "already there" in again.stdout

    server = subprocess.Popen(
        [TARHOLD, "serve", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "TARHOLD_CONFIG": ""},
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, body = get_json(f"http://127.0.0.1:{port}/-/ping")
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, server.stdout.read() if server.poll() is not None else "no answer"
        status, health = get_json(f"http://127.0.0.1:{port}/health")
        assert status == 200 and health["checks"]["store"]["status"] == "ok"
        assert health["checks"]["database"]["status"] == "ok"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_serve_with_an_invalid_config_stops_with_one_message(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", uplinks={"up": {"url": "http://127.0.0.1:1", "timeout": "soon"}})
    result = run("serve", "-c", str(config), timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == "tarhold: config: uplinks.up.timeout: 'soon' is not a duration like 30s, 2m, 1h"


def test_serve_on_an_unreachable_store_fails_cleanly(tmp_path: Path) -> None:
    port = free_port()
    dead = free_port()
    config = write_config(
        tmp_path / "config.yaml",
        listen=f"127.0.0.1:{port}",
        store={"aws-s3-storage": {
            "bucket": "b", "endpoint": f"http://127.0.0.1:{dead}", "region": "us-east-1",
            "s3ForcePathStyle": True, "accessKeyId": "k", "secretAccessKey": "s",
            "dynamoEndpoint": f"http://127.0.0.1:{dead}",
        }},
    )
    result = run("serve", "-c", str(config), timeout=120)
    assert result.returncode == 1
    assert "storage" in result.stderr and "Traceback" not in result.stderr


def test_init_on_the_embedded_default_creates_the_database(tmp_path: Path) -> None:
    result = run("init", "--storage", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / ".tarhold-db.sqlite3").exists()
    keyid = result.stdout.split("registry signing key ")[1].split()[0]
    assert keyid.startswith("SHA256:")
    listed = run("keys", "list", "--storage", str(tmp_path / "data"))
    assert listed.returncode == 0 and keyid in listed.stdout, listed.stdout + listed.stderr
