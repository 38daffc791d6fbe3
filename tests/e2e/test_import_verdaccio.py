"""`tarhold import verdaccio` from a storage a real Verdaccio 6 wrote.

A module fixture starts Verdaccio (htpasswd auth, no uplink), registers a
user over its CouchDB endpoint, publishes an unscoped package (two versions)
and a scoped one depending on it with the real npm CLI, and stops it. The
tests then import that storage (a copy each) into tarhold: into a directory,
interrupted and resumed, and from a verdaccio-aws-s3-storage-shaped bucket on
moto, which tarhold also serves in place. Pure transforms for documents
Verdaccio only cached from an uplink are tested at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import yaml

from registry.domain.package_list import POLL_SECONDS
from registry.domain.packages import MIRROR_MARK, is_mirrored
from registry.ops import cli
from registry.ops.import_docs import (
    Skip,
    VersionConflict,
    clean,
    is_verdaccio_doc,
    merge,
)
from storage.backends import build_backends
from storage.fs import FsPackageStore
from tests.e2e.fixtures import (
    TARHOLD,
    Npm,
    TarholdStorage,
    http_bytes,
    http_json,
    start_tarhold,
    unique_name,
)
from tests.support.aws_servers import AwsEndpoint, provision_aws
from tests.support.servers import free_port
from tests.support.verdaccio import start_verdaccio, verdaccio_config

pytestmark = pytest.mark.npm

USER = "vd-alice"
PASSWORD = "verdaccio horse battery"
PLAIN = "vd-plain"
SCOPED = "@vd/scoped"
BUCKET = "tarhold-import"


@dataclass(frozen=True)
class VerdaccioData:
    storage: Path
    htpasswd: Path


def registry_stub(port: int) -> Any:
    """What Npm.create needs of a server: its URL and auth key."""
    return SimpleNamespace(url=f"http://127.0.0.1:{port}/", auth_key=f"//127.0.0.1:{port}/")


def write_package(directory: Path, name: str, version: str, deps: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "version": version, "main": "index.js", "dependencies": deps or {}}
    (directory / "package.json").write_text(json.dumps(manifest))
    (directory / "index.js").write_text(f"module.exports = {json.dumps(f'{name}@{version}')};\n")
    return directory


@pytest.fixture(scope="module")
def verdaccio_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VerdaccioData]:
    if shutil.which("npm") is None:
        pytest.fail("this test needs the npm CLI on PATH", pytrace=False)
    workdir = tmp_path_factory.mktemp("verdaccio")
    storage, htpasswd = workdir / "storage", workdir / "htpasswd"
    port = free_port()
    server = start_verdaccio(workdir, port, verdaccio_config(storage, htpasswd=htpasswd))
    try:
        status, answer = http_json(
            "PUT", f"http://127.0.0.1:{port}/-/user/org.couchdb.user:{USER}",
            {"_id": f"org.couchdb.user:{USER}", "name": USER, "password": PASSWORD, "type": "user", "roles": []},
        )
        assert status == 201, answer
        npm = Npm.create(registry_stub(port), workdir / "npm", USER, answer["token"])
        for directory in (
            write_package(workdir / "p1", PLAIN, "1.0.0"),
            write_package(workdir / "p2", PLAIN, "1.1.0"),
            write_package(workdir / "p3", SCOPED, "2.0.0", {PLAIN: "^1.0.0"}),
        ):
            npm.ok("publish", "--access", "public", cwd=directory)
    finally:
        server.stop()
    yield VerdaccioData(storage, htpasswd)


def copy_of(data: VerdaccioData, where: Path) -> VerdaccioData:
    shutil.copytree(data.storage, where / "storage")
    shutil.copy(data.htpasswd, where / "htpasswd")
    return VerdaccioData(where / "storage", where / "htpasswd")


def run_tarhold(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TARHOLD), *args], capture_output=True, text=True, timeout=120, check=False
    )


def read_doc(store: FsPackageStore, name: str) -> dict[str, Any]:
    return orjson.loads(asyncio.run(store.read_packument(name)).data)


def stored_files(root: Path, name: str) -> set[str]:
    directory = root / name
    return {p.name for p in directory.iterdir() if not p.name.startswith(".")} if directory.is_dir() else set()


@pytest.fixture(autouse=True)
def keep_pytest_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process `cli.main` must not swap out pytest's log handlers."""
    monkeypatch.setattr("registry.ops.cli_ops.configure_logging", lambda config: None)


def test_verdaccio_storage_imports_and_npm_installs_from_tarhold(
    verdaccio_data: VerdaccioData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = copy_of(verdaccio_data, tmp_path)
    raw = json.loads((source.storage / PLAIN / "package.json").read_text())
    assert is_verdaccio_doc(raw) and set(raw["versions"]) == {"1.0.0", "1.1.0"}
    target = tmp_path / "tarhold"

    done = run_tarhold("import", "verdaccio", "--storage", str(source.storage),
                       "--htpasswd", str(source.htpasswd), "--maintainer", USER, "--into", str(target), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "packages: 2 imported, 0 skipped, 0 failed" in done.stdout, done.stdout
    assert "versions: 3 imported" in done.stdout and "tarballs: 3 imported" in done.stdout
    assert "users: 1 imported" in done.stdout
    assert "token secret was not imported" in done.stdout

    doc = read_doc(FsPackageStore(target), PLAIN)
    assert not set(doc) & {"_uplinks", "_distfiles", "_attachments", "_rev"}
    assert not is_mirrored(doc) and doc["dist-tags"]["latest"] == "1.1.0"
    assert doc["maintainers"] == [{"name": USER}]  # Verdaccio 6 records none

    server = start_tarhold(TarholdStorage("embedded", directory=target), tmp_path / "serve")
    try:
        npm = Npm.create(server, tmp_path / "npm")  # anonymous, fresh cache
        project = npm.workdir("project")
        (project / "package.json").write_text('{"name": "app", "version": "1.0.0"}')
        npm.ok("install", SCOPED, f"{PLAIN}@1.0.0", cwd=project)
        installed = json.loads((project / "node_modules" / "@vd" / "scoped" / "package.json").read_text())
        assert installed["version"] == "2.0.0"
        assert json.loads((project / "node_modules" / PLAIN / "package.json").read_text())["version"] == "1.0.0"

        login = f"{server.url}-/user/org.couchdb.user:{USER}"
        body = {"_id": f"org.couchdb.user:{USER}", "name": USER, "type": "user", "roles": []}
        status, _ = http_json("PUT", login, {**body, "password": "not the password"})
        assert status == 401
        status, answer = http_json("PUT", login, {**body, "password": PASSWORD})
        assert status == 201, answer
        status, who = http_json("GET", f"{server.url}-/whoami", token=answer["token"])
        assert status == 200 and who["username"] == USER
        publisher = Npm.create(server, tmp_path / "npm-alice", USER, answer["token"])
        publisher.ok("publish", cwd=write_package(tmp_path / "next", PLAIN, "1.2.0"))
        assert server.packument(PLAIN)["dist-tags"]["latest"] == "1.2.0"
    finally:
        server.stop()
    stored_hash = asyncio.run(_password_of(target, USER))
    assert stored_hash.startswith("scrypt$"), stored_hash

    assert cli.main(["import", "verdaccio", "--storage", str(source.storage),
                     "--htpasswd", str(source.htpasswd), "--into", str(target), "-q"]) == 0
    again = capsys.readouterr().out
    assert "nothing new" in again, again
    assert "packages: 0 imported, 2 skipped, 0 failed" in again
    assert "users: 0 imported, 1 skipped, 0 failed" in again


async def _password_of(target: Path, name: str) -> str:
    _, database = build_backends("fs", path=str(target))
    await database.open()
    try:
        return str((await database.get(f"USER#{name}", "PROFILE"))["password"])
    finally:
        await database.close()


class Interrupted(BaseException):
    """Stands in for a Ctrl-C or a killed process in the middle of an import."""


def test_interrupted_import_completes_on_rerun_and_never_points_at_missing_tarballs(
    verdaccio_data: VerdaccioData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = copy_of(verdaccio_data, tmp_path)
    target = tmp_path / "tarhold"
    argv = ["import", "verdaccio", "--storage", str(source.storage), "--into", str(target), "-q"]
    real_write = FsPackageStore.write_packument
    calls = 0

    async def failing_write(self: FsPackageStore, name: str, data: bytes, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second package: its tarballs are stored, its packument is not
            raise Interrupted()
        return await real_write(self, name, data, **kwargs)

    monkeypatch.setattr(FsPackageStore, "write_packument", failing_write)
    with pytest.raises(Interrupted):
        cli.main(argv)
    monkeypatch.setattr(FsPackageStore, "write_packument", real_write)
    store = FsPackageStore(target)
    imported = [n for n in (SCOPED, PLAIN) if (target / n / "package.json").exists()]
    assert len(imported) == 1
    for name in imported:  # whatever is visible is whole
        doc = read_doc(store, name)
        assert {f"{name.split('/')[-1]}-{v}.tgz" for v in doc["versions"]} <= stored_files(target, name)
    capsys.readouterr()

    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "packages: 1 imported, 1 skipped, 0 failed" in out, out
    for name in (SCOPED, PLAIN):
        doc = read_doc(store, name)
        assert doc["versions"]
        for version in doc["versions"]:
            filename = f"{name.split('/')[-1]}-{version}.tgz"
            data = (target / name / filename).read_bytes()
            assert hashlib.sha1(data).hexdigest() == doc["versions"][version]["dist"]["shasum"]


def test_corrupt_tarball_is_not_imported_and_its_version_left_out(
    verdaccio_data: VerdaccioData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = copy_of(verdaccio_data, tmp_path)
    (source.storage / PLAIN / f"{PLAIN}-1.0.0.tgz").write_bytes(b"not the published bytes")
    target = tmp_path / "tarhold"
    code = cli.main(["import", "verdaccio", "--storage", str(source.storage), "--into", str(target), "-q"])
    out = capsys.readouterr().out
    assert code == 1
    assert "tarballs: 2 imported, 0 skipped, 1 failed" in out, out
    assert f"{PLAIN}/{PLAIN}-1.0.0.tgz: sha1" in out
    assert f"{PLAIN}-1.0.0.tgz" not in stored_files(target, PLAIN)
    assert set(read_doc(FsPackageStore(target), PLAIN)["versions"]) == {"1.1.0"}


# -- verdaccio-aws-s3-storage bucket on moto --------------------------------------------


def upload_as_s3_plugin(endpoint: AwsEndpoint, data: VerdaccioData, prefix: str) -> dict[str, bytes]:
    """Put the storage in a bucket the way verdaccio-aws-s3-storage lays it out."""
    s3: Any = endpoint.client("s3")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    uploaded = {}
    for path in data.storage.rglob("*"):
        if path.is_file():
            relative = path.relative_to(data.storage).as_posix()
            key = f"{prefix}/verdaccio-s3-db.json" if relative == ".verdaccio-db.json" else f"{prefix}/{relative}"
            s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
            uploaded[key] = path.read_bytes()
    return uploaded


def test_verdaccio_s3_bucket_is_served_in_place_and_imported_without_copying(
    verdaccio_data: VerdaccioData, moto_server: AwsEndpoint, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = unique_name("verdaccio")
    uploaded = upload_as_s3_plugin(moto_server, verdaccio_data, prefix)
    section = {
        **moto_server.s3_section(BUCKET, prefix + "/"),  # the plugin's keyPrefix, trailing slash
        **moto_server.dynamodb_section(unique_name("tarhold-import")),
    }
    asyncio.run(provision_aws(section))
    s3: Any = moto_server.client("s3")
    tarball_key = f"{prefix}/{SCOPED}/scoped-2.0.0.tgz"
    before = s3.head_object(Bucket=BUCKET, Key=tarball_key)

    server = start_tarhold(TarholdStorage("aws", store_section=section), tmp_path / "serve")
    try:
        doc = server.packument(SCOPED)  # straight from Verdaccio's package.json
        assert doc["dist-tags"]["latest"] == "2.0.0"
        status, body = http_bytes(doc["versions"]["2.0.0"]["dist"]["tarball"])
        assert status == 200 and body == uploaded[tarball_key]

        config = tmp_path / "tarhold.yaml"
        config.write_text(yaml.safe_dump({"store": {"aws-s3-storage": section}}))
        argv = ["import", "verdaccio", "-c", str(config), "--s3-bucket", BUCKET,
                "--s3-prefix", prefix, "--s3-endpoint", moto_server.url, "-q", "--maintainer", USER]
        assert cli.main(argv) == 0
        done = capsys.readouterr().out
        assert "packages: 2 imported, 0 skipped, 0 failed" in done, done
        assert "tarballs: 0 imported, 3 skipped, 0 failed" in done, done
        assert "token secret was not imported" in done  # the plugin's db file was read
        after = s3.head_object(Bucket=BUCKET, Key=tarball_key)
        assert after["ETag"] == before["ETag"] and after["LastModified"] == before["LastModified"]
        stored = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}/{SCOPED}/package.json")["Body"].read())
        assert "_uplinks" not in stored and "_attachments" not in stored
        assert server.packument(SCOPED)["versions"]["2.0.0"]["dist"]["shasum"] == (
            hashlib.sha1(uploaded[tarball_key]).hexdigest()
        )
        # The running server learns of the import from the package list's change log (2 s polls).
        deadline = time.monotonic() + POLL_SECONDS + 5
        while True:
            status, found = http_json("GET", f"{server.url}-/v1/search?text=scoped")
            assert status == 200
            if SCOPED in [o["package"]["name"] for o in found["objects"]] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert SCOPED in [o["package"]["name"] for o in found["objects"]]
    finally:
        server.stop()

    assert cli.main(argv) == 0
    assert "nothing new" in capsys.readouterr().out


# -- documents Verdaccio only cached (pure) -------------------------------------------------


def cached_verdaccio_doc() -> dict[str, Any]:
    upstream = "http://upstream.test/left-pad/-/left-pad-1.3.0.tgz"
    return {
        "name": "left-pad", "_id": "left-pad", "_rev": "5-abc",
        "versions": {"1.3.0": {"name": "left-pad", "version": "1.3.0", "dist": {
            "shasum": "5b8a3a7765dfe001261dde915589e782f8c94d1e",
            "tarball": "http://127.0.0.1:4873/left-pad/-/left-pad-1.3.0.tgz"}}},
        "dist-tags": {"latest": "1.3.0"}, "time": {"1.3.0": "2018-04-09T01:39:17.000Z"},
        "_uplinks": {"npmjs": {"etag": '"W/abc"', "fetched": 1700000000000}},
        "_distfiles": {"left-pad-1.3.0.tgz": {"url": upstream, "sha": "5b8a3a7765dfe001261dde915589e782f8c94d1e"}},
        "_attachments": {"left-pad-1.3.0.tgz": {"shasum": "5b8a3a7765dfe001261dde915589e782f8c94d1e"}},
    }


def test_cached_only_package_becomes_a_mirrored_copy_with_upstream_urls() -> None:
    doc = clean(cached_verdaccio_doc(), local=False, base_url="http://127.0.0.1:4873/", uplink="npmjs")
    assert is_mirrored(doc) and doc[MIRROR_MARK]["uplink"] == "npmjs"
    assert doc[MIRROR_MARK]["fetched"] == 1700000000.0
    assert doc["versions"]["1.3.0"]["dist"]["tarball"] == "http://upstream.test/left-pad/-/left-pad-1.3.0.tgz"
    assert not set(doc) & {"_uplinks", "_distfiles", "_attachments", "_rev"}


def test_merge_rules_between_verdaccio_and_tarhold_documents() -> None:
    local = clean({**cached_verdaccio_doc(), "_uplinks": {}}, local=True, base_url="http://127.0.0.1:4873/")
    mirrored = clean(cached_verdaccio_doc(), local=False, base_url="", uplink="npmjs")
    assert merge(None, local) == (local, ["1.3.0"])
    assert merge(mirrored, local)[0] is local  # a published package replaces a mirror
    with pytest.raises(Skip):
        merge(local, mirrored)  # a cached copy never goes over a local package
    with pytest.raises(Skip):
        merge(local, local)  # idempotent
    newer = {**local, "versions": {**local["versions"], "1.4.0": {
        "name": "left-pad", "version": "1.4.0", "dist": {"shasum": "00" * 20}}}}
    merged, added = merge(local, newer)
    assert added == ["1.4.0"] and set(merged["versions"]) == {"1.3.0", "1.4.0"}
    changed = {**local, "versions": {"1.3.0": {"name": "left-pad", "version": "1.3.0", "dist": {"shasum": "11" * 20}}}}
    with pytest.raises(VersionConflict):
        merge(local, changed)
    unpublished = {**local, "versions": {}, "time": {**local["time"], "1.3.0": "2018-04-09T01:39:17.000Z"}}
    with pytest.raises(VersionConflict):
        merge(unpublished, local)
