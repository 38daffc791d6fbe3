"""End-to-end fixtures: real `tarhold serve` processes, and real npm clients.

- `tarhold`: one server for a whole test module, parametrized over the
  embedded storage (a directory with SQLite) and S3 + DynamoDB on the moto
  server. Tests in a module share it and keep apart by unique package and
  user names (`unique_name`).
- `tarhold_storage` / `start_tarhold_on`: fresh storage of a backend, and
  more servers on it (two instances on one storage), stopped after the test.
- `npm_as`: npm bound to the module's server as a fresh user (registered
  over HTTP, its token in a throwaway .npmrc), or anonymous with `None`.
  `new_npm(server, user)` does the same for any server.

Every server listens on 127.0.0.1 only and is stopped by its own PID.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fixtures import (
    NewNpm,
    Npm,
    TarholdServer,
    TarholdStorage,
    start_tarhold,
    unique_name,
)
from tests.support.aws_servers import AwsEndpoint
from tests.support.aws_servers import provision_aws as servers_provision_aws

BACKENDS = ["embedded", "aws"]
AWS_BUCKET = "tarhold-e2e"


@pytest.fixture(scope="session")
def npm_cli() -> str:
    """The npm CLI on PATH; the e2e tests are about it, so its absence fails them."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("the end-to-end tests need the npm CLI (node 20 + npm) on PATH", pytrace=False)
    return npm


# -- storage and servers ----------------------------------------------------------


def provision_aws(section: dict[str, Any]) -> None:
    """What `tarhold init` does: the bucket and the table (in a thread: no loop here)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, servers_provision_aws(section)).result(timeout=120)


def make_storage(backend: str, request: pytest.FixtureRequest, directory: Path) -> TarholdStorage:
    """Fresh storage: a new directory, or a new key prefix and table on moto."""
    if backend == "embedded":
        return TarholdStorage("embedded", directory=directory)
    endpoint: AwsEndpoint = request.getfixturevalue("moto_server")
    section = {
        **endpoint.s3_section(AWS_BUCKET, unique_name("e2e") + "/"),
        **endpoint.dynamodb_section(unique_name("tarhold-e2e")),
    }
    provision_aws(section)
    return TarholdStorage("aws", store_section=section)


@pytest.fixture(scope="module", params=BACKENDS)
def tarhold(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TarholdServer]:
    """One `tarhold serve` for the test module, on a fresh storage of each backend."""
    backend = str(request.param)
    workdir = tmp_path_factory.mktemp(f"tarhold-{backend}")
    server = start_tarhold(make_storage(backend, request, workdir / "storage"), workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def tarhold_storage(request: pytest.FixtureRequest, tmp_path: Path) -> TarholdStorage:
    """Fresh storage of each backend, for tests that start their own servers."""
    return make_storage(str(request.param), request, tmp_path / "storage")


@pytest.fixture
def start_tarhold_on(tmp_path: Path) -> Iterator[Callable[[TarholdStorage], TarholdServer]]:
    """Start `tarhold serve` processes on a storage; all stopped after the test."""
    started: list[TarholdServer] = []

    def start(storage: TarholdStorage, **options: Any) -> TarholdServer:
        name = f"tarhold-{len(started) + 1}"
        server = start_tarhold(storage, tmp_path / name, name, **options)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()


# -- clients --------------------------------------------------------------------


@pytest.fixture
def new_npm(tmp_path: Path, npm_cli: str) -> NewNpm:
    """`new_npm(server, "alice")`: npm as a freshly registered user `alice-<hex>`;
    `new_npm(server, None)`: anonymous. Each gets its own HOME, .npmrc and cache."""
    count = 0

    def make(server: TarholdServer, user: str | None = None, *, token: str | None = None) -> Npm:
        nonlocal count
        count += 1
        home = tmp_path / f"npm{count}-{user or 'anonymous'}"
        name = None
        if user is not None:
            name = unique_name(user)
            token = server.add_user(name)
        return Npm.create(server, home, name, token)

    return make


@pytest.fixture
def npm_as(tarhold: TarholdServer, new_npm: NewNpm) -> Callable[..., Npm]:
    """npm on the module's server as a fresh user, or anonymous with None."""

    def make(user: str | None = None, *, token: str | None = None) -> Npm:
        return new_npm(tarhold, user, token=token)

    return make
