"""Helpers for the end-to-end tests: real `tarhold serve` processes and real clients.

- `TarholdStorage` is where a server keeps its data (a directory, or S3 +
  DynamoDB on moto); `start_tarhold` runs `tarhold serve` on it, on 127.0.0.1
  and a free port, and returns once /-/ping answers. Several servers on one
  `TarholdStorage` share everything, as instances behind a load balancer do.
- `Npm` runs the real npm CLI with a throwaway HOME, user and global config
  and cache, so the machine's own npm configuration is never read or written.
- `client_bin("pnpm")` / `client_bin("yarn")` find the clients that
  tests/tools/install-clients.sh installed, and fail saying how to get them.
- small synchronous HTTP helpers (`http_json`, `add_user`) for test setup.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.support.servers import HOST, ROOT, ServerProcess, free_port

TARHOLD = Path(sys.executable).parent / "tarhold"
CLIENTS_BIN = ROOT / ".cache" / "clients" / "node_modules" / ".bin"

SERVER_START_TIMEOUT = 30.0
HTTP_TIMEOUT = 30.0
CLIENT_TIMEOUT = 120.0  # one npm/pnpm/yarn command; a cold cache on a slow box
PASSWORD = "e2e correct horse battery"


def unique_name(prefix: str) -> str:
    """A package or user name no other test uses (lowercase, npm-valid)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- servers --------------------------------------------------------------------


@dataclass(frozen=True)
class TarholdStorage:
    """Where tarhold keeps its data: `--storage DIR`, or a `store:` config section."""

    backend: str  # "embedded" or "aws"
    directory: Path | None = None
    store_section: dict[str, Any] | None = None

    def config(self, port: int) -> dict[str, Any]:
        """A whole config.yaml for one instance on this storage."""
        config: dict[str, Any] = {"listen": f"{HOST}:{port}", "log": {"level": "info"}}
        if self.store_section is not None:
            config["store"] = {"aws-s3-storage": self.store_section}
        else:
            config["storage"] = str(self.directory)
        return config


@dataclass
class TarholdServer:
    """One `tarhold serve` process this test session started."""

    process: ServerProcess
    port: int
    storage: TarholdStorage

    @property
    def url(self) -> str:
        """The registry URL as npm wants it, with the trailing slash."""
        return f"http://{HOST}:{self.port}/"

    @property
    def auth_key(self) -> str:
        """The nerf-darted key npm looks up credentials under."""
        return f"//{HOST}:{self.port}/"

    def stop(self) -> None:
        self.process.stop()

    def log(self) -> str:
        return self.process.output()

    def add_user(self, name: str, password: str = PASSWORD) -> str:
        return add_user(self.url, name, password)

    def packument(self, name: str) -> dict[str, Any]:
        status, body = http_json("GET", self.url + path_of(name).lstrip("/"))
        assert status == 200, f"GET packument {name}: {status} {body}"
        return body


def start_tarhold(
    storage: TarholdStorage, workdir: Path, name: str = "tarhold", *,
    args: Sequence[str] = (), config: dict[str, Any] | None = None,
) -> TarholdServer:
    """`tarhold serve` on `storage`, on a free port of 127.0.0.1, answering /-/ping.

    `args` go to `tarhold serve` (say `--workers 2`); `config` adds top-level
    sections to the config file."""
    if not TARHOLD.is_file():
        pytest.fail(f"no {TARHOLD}: install the project into the venv (`make install-test`)", pytrace=False)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump({**storage.config(port), **(config or {})}))
    argv = [str(TARHOLD), "serve", "-c", str(config_path), "--listen", f"{HOST}:{port}", *args]
    if storage.directory is not None:
        argv += ["--storage", str(storage.directory)]
    process = ServerProcess.spawn(name, argv, cwd=workdir, log_dir=workdir)
    url = f"http://{HOST}:{port}/-/ping"

    def probe() -> None:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback server
            assert response.status == 200

    process.wait_until_ready(probe, timeout=SERVER_START_TIMEOUT, what="GET /-/ping")
    return TarholdServer(process, port, storage)


# -- HTTP -----------------------------------------------------------------------


def path_of(name: str) -> str:
    """The path npm uses for a package: scoped names with an encoded slash."""
    return "/" + quote(name, safe="@")


def http_json(
    method: str, url: str, body: Any = None, *, token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request; (status, decoded JSON body or the raw text when it is not JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def http_bytes(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def add_user(registry: str, name: str, password: str = PASSWORD) -> str:
    """Register `name` the way `npm adduser` does (CouchDB PUT); its token."""
    body = {
        "_id": f"org.couchdb.user:{name}", "name": name, "password": password,
        "email": f"{name}@example.com", "type": "user", "roles": [],
        "date": "2024-05-01T12:00:00.000Z",
    }
    status, answer = http_json("PUT", f"{registry}-/user/org.couchdb.user:{name}", body)
    assert status == 201, f"PUT /-/user/org.couchdb.user:{name}: {status} {answer}"
    return str(answer["token"])


# -- clients --------------------------------------------------------------------


@dataclass
class Result:
    """What a client command did."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def explain(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise AssertionError(f"not JSON on stdout:\n{self.explain()}") from None


def client_env(home: Path) -> dict[str, str]:
    """The environment for npm, pnpm and yarn: a throwaway HOME, no inherited
    npm/yarn/pnpm settings, no update checks, no colors, no proxies."""
    dropped = ("npm_", "yarn_", "pnpm_", "node_options", "http_proxy", "https_proxy", "all_proxy")
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith(dropped)}
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "npm_config_globalconfig": str(home / "global-npmrc"),
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        "npm_config_browser": "false",
        "NO_UPDATE_NOTIFIER": "1",
        "NO_COLOR": "1",
    })
    (home / "global-npmrc").parent.mkdir(parents=True, exist_ok=True)
    (home / "global-npmrc").touch()
    return env


def run_client(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> Result:
    """Run a client with no stdin, bounded in time; a timeout is a test failure."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace")
        err = (exc.stderr or b"").decode(errors="replace")
        pytest.fail(
            f"$ {' '.join(argv)} did not finish within {timeout:.0f}s"
            f" (after {time.monotonic() - started:.0f}s)\n--- stdout\n{out}\n--- stderr\n{err}"
        )
    stdout, stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    return Result(argv, done.returncode, stdout, stderr)


@dataclass
class Npm:
    """The real npm CLI bound to one registry, one user (or none) and a throwaway config."""

    registry: str
    home: Path
    user: str | None = None
    token: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls, server: TarholdServer, home: Path, user: str | None = None, token: str | None = None
    ) -> Npm:
        home.mkdir(parents=True, exist_ok=True)
        npm = cls(server.url, home, user, token, client_env(home))
        npm.userconfig.write_text(f"{server.auth_key}:_authToken={token}\n" if token else "")
        return npm

    @property
    def userconfig(self) -> Path:
        return self.home / ".npmrc"

    @property
    def cache(self) -> Path:
        return self.home / "npm-cache"

    def workdir(self, name: str) -> Path:
        """A fresh directory beside this npm's HOME, for a project or a package."""
        path = self.home.parent / f"{self.home.name}-{name}"
        path.mkdir(parents=True, exist_ok=False)
        return path

    def argv(self, *args: str) -> list[str]:
        return [
            "npm", *args,
            "--registry", self.registry,
            "--userconfig", str(self.userconfig),
            "--cache", str(self.cache),
            "--update-notifier=false", "--fund=false", "--audit=false",
            "--fetch-retries=0", "--fetch-timeout=30000",
        ]

    def run(self, *args: str, cwd: Path | None = None, timeout: float = CLIENT_TIMEOUT) -> Result:
        """`npm ARGS`; the result, whatever the exit code."""
        return run_client(self.argv(*args), cwd=cwd or self.home, env=self.env, timeout=timeout)

    def ok(self, *args: str, cwd: Path | None = None, timeout: float = CLIENT_TIMEOUT) -> Result:
        """`npm ARGS`, which must succeed."""
        result = self.run(*args, cwd=cwd, timeout=timeout)
        assert result.returncode == 0, result.explain()
        return result

    def fails(self, *args: str, cwd: Path | None = None, timeout: float = CLIENT_TIMEOUT) -> Result:
        """`npm ARGS`, which must fail."""
        result = self.run(*args, cwd=cwd, timeout=timeout)
        assert result.returncode != 0, result.explain()
        return result

    def publish(self, package_dir: Path, *args: str) -> Result:
        return self.ok("publish", *args, cwd=package_dir)

    def install(self, *specs: str) -> Path:
        """`npm install SPECS` in a fresh project; the project directory."""
        project = self.workdir(f"project-{uuid.uuid4().hex[:8]}")
        self.ok("install", "--no-package-lock", *specs, cwd=project)
        return project


NewNpm = Callable[..., Npm]
"""`new_npm(server, "alice")` / `new_npm(server, None, token=...)` (the fixture)."""


def write_package(
    directory: Path, name: str, version: str, *, dependencies: dict[str, str] | None = None,
    index: str | None = None, **manifest: Any,
) -> Path:
    """A package directory `npm publish` can publish: package.json, index.js, README.md.

    index.js exports "NAME@VERSION" unless `index` says otherwise, so an
    install can be checked byte for byte.
    """
    directory.mkdir(parents=True, exist_ok=True)
    package_json: dict[str, Any] = {
        "name": name, "version": version, "description": f"{name} for the e2e tests",
        "main": "index.js", "license": "MIT", **manifest,
    }
    if dependencies:
        package_json["dependencies"] = dependencies
    (directory / "package.json").write_text(json.dumps(package_json, indent=2) + "\n")
    (directory / "index.js").write_text(index if index is not None else index_js(name, version))
    (directory / "README.md").write_text(f"# {name}\n\nVersion {version}, published by the e2e tests.\n")
    return directory


def index_js(name: str, version: str) -> str:
    return f"module.exports = {json.dumps(f'{name}@{version}')};\n"


def installed_file(project: Path, name: str, file: str = "index.js") -> str:
    """A file of an installed package, read through pnpm's symlinks too."""
    path = project / "node_modules" / name / file
    if not path.is_file():
        modules = project / "node_modules"
        present = sorted(p.name for p in modules.iterdir()) if modules.is_dir() else []
        raise AssertionError(f"{path} is not there; node_modules holds {present}")
    return path.read_text()


def client_bin(tool: str) -> Path:
    """pnpm or yarn from .cache/clients; a clear failure when they are missing."""
    path = CLIENTS_BIN / tool
    if not path.exists():
        pytest.fail(
            f"no {path}: run `sh tests/tools/install-clients.sh .cache/clients`"
            " (`make test` does)",
            pytrace=False,
        )
    return path


@contextmanager
def embedded_tarhold(workdir: Path, **options: Any) -> Iterator[TarholdServer]:
    """One `tarhold serve` on embedded storage in `workdir`, stopped afterwards."""
    server = start_tarhold(TarholdStorage("embedded", directory=workdir / "storage"), workdir, **options)
    try:
        yield server
    finally:
        server.stop()
