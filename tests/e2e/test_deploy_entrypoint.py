"""The image entrypoint script, run as the image would run it.

No Docker engine runs here: the entrypoint runs against a fake `tarhold`
that prints what it was given, and once against the real one, whose
HEALTHCHECK (from the Dockerfile) is run as Docker would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.config import DEFAULT_PORT
from registry.ops.cli import build_parser
from tests.support.deploy_files import (
    DATA_DIR,
    ENTRYPOINT,
    dockerfile_healthcheck,
)
from tests.support.servers import free_port

# --------------------------------------------------------------------------
# The entrypoint script, with a fake tarhold on PATH
# --------------------------------------------------------------------------

FAKE_TARHOLD = """#!/bin/sh
printf 'pid=%s\\n' "$$"
printf 'config=%s\\n' "${TARHOLD_CONFIG-<unset>}"
for arg in "$@"; do printf 'arg=%s\\n' "$arg"; done
"""


class Ran:
    """What the fake tarhold printed: its argv, TARHOLD_CONFIG, and whether it replaced the shell."""

    def __init__(self, stdout: str, entrypoint_pid: int) -> None:
        lines = stdout.splitlines()
        values = [line.partition("=") for line in lines]
        self.argv = [value for key, _, value in values if key == "arg"]
        self.config = next(value for key, _, value in values if key == "config")
        self.exec_replaced_shell = int(next(v for k, _, v in values if k == "pid")) == entrypoint_pid

    def options(self) -> Any:
        """The argv as `tarhold` itself would parse it."""
        return build_parser().parse_args(self.argv)


@pytest.fixture
def image(tmp_path: Path) -> Iterator[Any]:
    """Run the entrypoint as the image would, with `tarhold` faked and the default config path in tmp."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tarhold"
    fake.write_text(FAKE_TARHOLD)
    fake.chmod(0o755)
    default_config = tmp_path / "etc" / "config.yaml"

    def run(*args: str, **env: str) -> Ran:
        environment = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "TARHOLD_CONFIG_DEFAULT": str(default_config),
            **env,
        }
        process = subprocess.Popen(
            ["/bin/sh", str(ENTRYPOINT), *args], env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        return Ran(stdout, process.pid)

    run.default_config = default_config  # type: ignore[attr-defined]
    yield run


def write_default_config(image: Any) -> Path:
    path: Path = image.default_config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("listen: 0.0.0.0:4873\n")
    return path


def test_no_arguments_and_no_config_serve_the_embedded_default_on_all_interfaces(image: Any) -> None:
    ran = image()
    assert ran.argv[0] == "serve"
    options = ran.options()
    assert (options.config, options.listen, options.storage) == (None, f"0.0.0.0:{DEFAULT_PORT}", DATA_DIR)
    assert ran.config == "<unset>"
    assert ran.exec_replaced_shell


def test_options_alone_are_options_of_serve(image: Any) -> None:
    ran = image("--workers", "2")
    assert ran.argv[0] == "serve"
    assert ran.argv[-2:] == ["--workers", "2"]
    assert "--listen" in ran.argv and "--storage" in ran.argv


def test_listen_and_storage_come_from_the_environment_without_a_config(image: Any) -> None:
    options = image(TARHOLD_LISTEN="127.0.0.1:9000", TARHOLD_STORAGE="/data").options()
    assert (options.config, options.listen, options.storage) == (None, "127.0.0.1:9000", "/data")


def test_command_line_options_win_over_the_entrypoint_defaults(image: Any) -> None:
    options = image("--listen", "10.0.0.1:80", "--storage", "/elsewhere").options()
    assert (options.listen, options.storage) == ("10.0.0.1:80", "/elsewhere")


def test_config_at_the_default_path_is_used_and_exported(image: Any) -> None:
    path = write_default_config(image)
    ran = image()
    options = ran.options()
    assert (options.config, options.listen, options.storage) == (str(path), None, None)
    assert ran.config == str(path)


def test_tarhold_config_wins_over_the_default_path(image: Any) -> None:
    write_default_config(image)
    ran = image("serve", TARHOLD_CONFIG="/run/secrets/tarhold.yaml")
    options = ran.options()
    assert (options.config, options.listen, options.storage) == ("/run/secrets/tarhold.yaml", None, None)
    assert ran.config == "/run/secrets/tarhold.yaml"


def test_tarhold_listen_overrides_the_listen_of_a_config(image: Any) -> None:
    path = write_default_config(image)
    options = image(TARHOLD_LISTEN="0.0.0.0:8080").options()
    assert (options.config, options.listen, options.storage) == (str(path), "0.0.0.0:8080", None)


def test_explicit_serve_gets_the_same_config_logic(image: Any) -> None:
    options = image("serve", "--listen", "127.0.0.1:1234").options()
    assert (options.listen, options.storage) == ("127.0.0.1:1234", DATA_DIR)


def test_other_tarhold_commands_use_the_serve_storage_without_a_config(image: Any) -> None:
    ran = image("user", "add", "alice", "--admin")
    assert ran.argv == ["user", "add", "alice", "--admin", "--storage", DATA_DIR]
    assert ran.options().storage == DATA_DIR
    assert ran.exec_replaced_shell
    assert image("init", "-c", "/x.yaml").argv == ["init", "-c", "/x.yaml"]
    assert image("token", "list", "--storage=/d").argv == ["token", "list", "--storage=/d"]


def test_other_tarhold_commands_read_the_config_at_the_default_path(image: Any) -> None:
    path = write_default_config(image)
    ran = image("init")
    assert ran.argv == ["init"]
    assert ran.config == str(path)


def test_anything_else_runs_as_given(image: Any) -> None:
    path = write_default_config(image)
    ran = image("tarhold", "init")
    assert ran.argv == ["init"] and ran.config == str(path) and ran.exec_replaced_shell
    shell = subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), "sh", "-c", 'echo "shell $TARHOLD_CONFIG"'],
        env={"PATH": "/usr/bin:/bin", "TARHOLD_CONFIG_DEFAULT": str(path)},
        capture_output=True, text=True, timeout=30,
    )
    assert shell.returncode == 0 and shell.stdout == f"shell {path}\n"


def ping(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ping", timeout=2) as response:
            return int(response.status)
    except OSError:
        return None


def test_entrypoint_serves_the_real_tarhold_and_passes_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "TARHOLD_CONFIG": "",
        "TARHOLD_CONFIG_DEFAULT": str(tmp_path / "absent.yaml"),
        "TARHOLD_LISTEN": f"127.0.0.1:{port}",
        "TARHOLD_STORAGE": str(data),
    }
    env.pop("TARHOLD_ADMIN_PASSWORD", None)
    server = subprocess.Popen(
        ["/bin/sh", str(ENTRYPOINT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None and ping(port) != 200:
            time.sleep(0.2)
        assert ping(port) == 200, server.stdout.read() if server.poll() is not None else "no answer"
        assert any(data.iterdir()), "the embedded default did not use TARHOLD_STORAGE"
        # The image's HEALTHCHECK command, run as Docker would.
        check = subprocess.run(dockerfile_healthcheck(), env=env, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
    finally:
        server.send_signal(signal.SIGTERM)  # to the entrypoint's pid: tarhold, after exec
        try:
            code = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise
    assert code == 0
    assert ping(port) is None


def test_healthcheck_fails_when_nothing_answers() -> None:
    env = {**os.environ, "TARHOLD_LISTEN": f"127.0.0.1:{free_port()}"}
    check = subprocess.run(dockerfile_healthcheck(), env=env, capture_output=True, text=True, timeout=30)
    assert check.returncode != 0


def test_entrypoint_is_valid_posix_sh() -> None:
    dash = Path("/bin/dash") if Path("/bin/dash").exists() else Path("/bin/sh")
    result = subprocess.run([str(dash), "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
