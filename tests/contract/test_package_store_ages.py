"""The PackageStore contract for what gc judges files by, on every backend:
each file's age, every package with any file (with a packument or without),
and leftovers of writes a killed process never finished.

On S3 a store aborts, when it opens, the multipart uploads a killed process
left behind, once older than `abort_multipart_after`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from storage.backends import validate_s3_section
from storage.base import (
    PACKUMENT_FILE,
    ConfigError,
    NotFound,
    PackageStore,
    StorageError,
)
from storage.fs import FsPackageStore
from storage.s3 import S3PackageStore
from storage.s3_upkeep import abort_abandoned_uploads
from tests.contract.store_helpers import (
    chunks_of,
    put_package,
    put_root_file,
    set_page_size,
)
from tests.support.store_factory import PackageStoreFactory

SLACK = 5.0  # seconds: a server's clock and second-precision times


def in_scoped_folder(name: str) -> str:
    return "scoped" if name.startswith("@") else ""


# -- ages -----------------------------------------------------------------------


async def test_stored_files_are_the_package_files_with_size_etag_and_age(package_store: PackageStore) -> None:
    before = time.time()
    await put_package(package_store, "left-pad", ["left-pad-1.0.0.tgz", "left-pad-1.1.0.tgz"])
    after = time.time()
    files = {f.filename: f for f in await package_store.list_stored_files("left-pad")}
    assert set(files) == set(await package_store.list_files("left-pad"))
    assert not any(f.partial for f in files.values())
    tarball = files["left-pad-1.1.0.tgz"]
    assert tarball.size == len(b"left-pad/left-pad-1.1.0.tgz")
    assert tarball.modified is not None and before - SLACK <= tarball.modified <= after + SLACK
    assert files[PACKUMENT_FILE].modified is not None
    assert await package_store.list_stored_files("never-stored") == []


async def test_stat_gives_the_age_and_etag_the_listing_gives(package_store: PackageStore) -> None:
    await package_store.write_tarball("left-pad", "left-pad-1.0.0.tgz", chunks_of(b"bytes"))
    [listed] = await package_store.list_stored_files("left-pad")
    info = await package_store.stat_tarball("left-pad", "left-pad-1.0.0.tgz")
    assert info.etag == listed.etag
    assert info.modified is not None and listed.modified is not None
    assert int(info.modified) == int(listed.modified)  # a listing may be finer than a HEAD


async def test_writing_a_tarball_again_changes_what_gc_compares(package_store: PackageStore) -> None:
    # gc deletes an orphan only if it is still the file it listed.
    await package_store.write_tarball("left-pad", "left-pad-1.0.0.tgz", chunks_of(b"first"))
    [first] = await package_store.list_stored_files("left-pad")
    await asyncio.sleep(1.1)  # S3 times have whole seconds
    await package_store.write_tarball("left-pad", "left-pad-1.0.0.tgz", chunks_of(b"first"))
    info = await package_store.stat_tarball("left-pad", "left-pad-1.0.0.tgz")
    assert (info.etag, int(info.modified or 0)) != (first.etag, int(first.modified or 0))


# -- packages with files --------------------------------------------------------


async def test_stored_package_names_include_packages_with_only_tarballs(
    package_store_factory: PackageStoreFactory,
) -> None:
    store = await package_store_factory(folder=in_scoped_folder)
    set_page_size(store, 2)
    await put_package(store, "lodash", ["lodash-4.17.21.tgz"])
    await put_package(store, "@acme/ui", ["ui-1.0.0.tgz"])
    # What a first publish leaves when its process dies before the packument write:
    await store.write_tarball("orphaned", "orphaned-1.0.0.tgz", chunks_of(b"x"))
    await store.write_tarball("@acme/lost", "lost-2.0.0.tgz", chunks_of(b"y"))
    await put_root_file(store, ".verdaccio-db.json", b"{}")
    names = [n async for n in store.stored_package_names()]
    assert sorted(names) == ["@acme/lost", "@acme/ui", "lodash", "orphaned"]
    assert sorted([n async for n in store.package_names()]) == ["@acme/ui", "lodash"]


async def test_deleting_a_leftover_that_is_not_there_is_not_found(package_store: PackageStore) -> None:
    with pytest.raises(NotFound):
        await package_store.delete_partial("left-pad", ".tmp-gone")


# -- leftovers of killed writes (fs) --------------------------------------------------


def leave_temp_file(store: FsPackageStore, name: str, data: bytes) -> str:
    """What a tarball write killed mid-stream leaves: a temp file beside the package's files."""
    directory = store.package_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return os.path.basename(path)


async def test_a_killed_writes_temp_file_is_a_leftover_never_a_package_file(tmp_path: Path) -> None:
    store = FsPackageStore(tmp_path / "store")
    await store.open()
    await put_package(store, "left-pad", ["left-pad-1.0.0.tgz"])
    kept = leave_temp_file(store, "left-pad", b"half a tarball")
    alone = leave_temp_file(store, "first-publish", b"half of another")
    assert kept not in await store.list_files("left-pad")
    with pytest.raises(StorageError):
        await store.open_tarball("left-pad", kept)
    leftovers = [f for f in await store.list_stored_files("left-pad") if f.partial]
    assert [f.filename for f in leftovers] == [kept]
    assert "first-publish" in [n async for n in store.stored_package_names()]
    assert "first-publish" not in [n async for n in store.package_names()]
    await store.delete_partial("left-pad", kept)
    await store.delete_partial("first-publish", alone)
    assert not any(f.partial for f in await store.list_stored_files("left-pad"))
    with pytest.raises(StorageError):
        await store.delete_partial("left-pad", "left-pad-1.0.0.tgz")  # a package file is no leftover


# -- abandoned multipart uploads (S3) ----------------------------------------------


def s3_only(store: PackageStore) -> S3PackageStore:
    if not isinstance(store, S3PackageStore):
        pytest.skip("multipart uploads are S3's")
    return store


async def start_upload(store: S3PackageStore, key: str) -> str:
    """A multipart upload with one part, as a process killed mid-upload leaves it."""
    upload = await store.client.create_multipart_upload(Bucket=store.bucket, Key=key)
    await store.client.upload_part(
        Bucket=store.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"part one"
    )
    return str(upload["UploadId"])


async def uploads(store: S3PackageStore, prefix: str) -> dict[str, Any]:
    answer = await store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=prefix)
    return {u["Key"]: u for u in answer.get("Uploads") or ()}


def reopened(store: S3PackageStore, abort_after: float | None) -> S3PackageStore:
    """Another store on the same bucket and key prefix, aborting uploads older than `abort_after`."""
    return S3PackageStore(
        store.bucket, key_prefix=store.key_prefix, force_path_style=store.force_path_style,
        abort_multipart_after=abort_after, **vars(store.aws),
    )


async def test_opening_aborts_tarball_uploads_older_than_the_bound(package_store: PackageStore) -> None:
    store = s3_only(package_store)
    root = store.root_prefix()
    tarball = store.file_key("left-pad", "left-pad-1.0.0.tgz")
    other = root + "not-ours/backup.bin"  # another program's upload: never touched
    await start_upload(store, tarball)
    other_id = await start_upload(store, other)
    try:
        assert set(await uploads(store, root)) == {tarball, other}
        fresh = reopened(store, 0)
        await fresh.open()
        await fresh.close()
        assert set(await uploads(store, root)) == {other}
        with pytest.raises(NotFound):
            await store.stat_tarball("left-pad", "left-pad-1.0.0.tgz")  # nothing became visible
    finally:
        await store.client.abort_multipart_upload(Bucket=store.bucket, Key=other, UploadId=other_id)


async def test_opening_keeps_uploads_younger_than_the_bound(package_store: PackageStore) -> None:
    store = s3_only(package_store)
    key = store.file_key("left-pad", "left-pad-1.0.0.tgz")
    upload_id = await start_upload(store, key)
    try:
        initiated = (await uploads(store, store.root_prefix()))[key]["Initiated"].timestamp()
        if abs(initiated - time.time()) > 3600:
            # moto answers every ListMultipartUploads with Initiated
            # 2010-11-10T20:48:33Z: there any bound aborts every upload.
            pytest.skip(f"this S3 reports no real upload times (Initiated {initiated:.0f})")
        for bound in (3600.0, None):  # a live upload of another instance; or left to the bucket rule
            fresh = reopened(store, bound)
            await fresh.open()
            await fresh.close()
            assert key in await uploads(store, store.root_prefix())
    finally:
        await store.client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)


# -- the bound, and a listing S3 refuses --------------------------------------------


def test_abort_multipart_after_is_a_duration_a_day_by_default_or_off() -> None:
    def bound(**option: Any) -> float | None:
        return S3PackageStore.from_config({"bucket": "tarhold-b", **option}).abort_multipart_after

    assert bound() == 86400
    assert bound(abort_multipart_after="12h") == 12 * 3600
    assert bound(abort_multipart_after=0) == 0
    assert bound(abort_multipart_after=False) is None
    assert bound(abort_multipart_after="false") is None
    for wrong in ("soon", -1, True):
        with pytest.raises(ConfigError, match="abort_multipart_after"):
            bound(abort_multipart_after=wrong)
    validate_s3_section({"bucket": "tarhold-b", "abort_multipart_after": "2d"})  # a known option


class ListingClient:
    """Answers ListMultipartUploads with the given uploads (or error), records aborts."""

    def __init__(self, uploads: list[dict[str, Any]], error: Exception | None = None) -> None:
        self.uploads = uploads
        self.error = error
        self.aborted: list[str] = []

    def get_paginator(self, operation: str) -> ListingClient:
        assert operation == "list_multipart_uploads"
        return self

    async def paginate(self, **_: Any) -> AsyncIterator[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        yield {"Uploads": self.uploads}

    async def abort_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str) -> None:
        self.aborted.append(Key)


async def test_only_tarball_uploads_older_than_the_bound_are_aborted() -> None:
    now = datetime.now(UTC)
    client = ListingClient([
        {"Key": "p/old/old-1.0.0.tgz", "UploadId": "1", "Initiated": now - timedelta(hours=25)},
        {"Key": "p/live/live-1.0.0.tgz", "UploadId": "2", "Initiated": now - timedelta(hours=2)},
        {"Key": "p/backup.tar", "UploadId": "3", "Initiated": now - timedelta(days=9)},
    ])
    assert await abort_abandoned_uploads(client, "bucket", "p/", 24 * 3600) == ["p/old/old-1.0.0.tgz"]
    assert client.aborted == ["p/old/old-1.0.0.tgz"]


async def test_a_refused_listing_of_uploads_does_not_stop_a_start(caplog: pytest.LogCaptureFixture) -> None:
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListMultipartUploads")
    assert await abort_abandoned_uploads(ListingClient([], denied), "bucket", "p/", 0) == []
    assert "AccessDenied" in caplog.text and "AbortIncompleteMultipartUpload" in caplog.text
