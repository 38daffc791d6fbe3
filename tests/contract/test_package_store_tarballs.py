"""The PackageStore contract for tarballs, on every backend: streamed in and
out in bounded memory, visible only once complete, stat, delete.
"""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest

from storage.base import PACKUMENT_FILE, NotFound, PackageStore
from storage.fs import FsPackageStore
from tests.contract.store_helpers import (
    NAME,
    PACKUMENT,
    TARBALL,
    KiB,
    MiB,
    StreamBroke,
    breaking_stream,
    chunks_of,
    generated,
    generated_chunks,
    put_package,
    read_tarball,
)

# -- tarballs -----------------------------------------------------------------


async def test_tarball_round_trips_with_size_and_etag(package_store: PackageStore) -> None:
    data = generated(300 * KiB + 17)
    size = await package_store.write_tarball(NAME, TARBALL, chunks_of(data))
    assert size == len(data)

    async with await package_store.open_tarball(NAME, TARBALL) as reader:
        assert reader.size == len(data)
        assert isinstance(reader.etag, str) and reader.etag
        received = b"".join([chunk async for chunk in reader])
    assert received == data


async def test_writing_a_tarball_again_replaces_it(package_store: PackageStore) -> None:
    await package_store.write_tarball(NAME, TARBALL, chunks_of(b"old"))
    await package_store.write_tarball(NAME, TARBALL, chunks_of(b"new bytes"))
    assert await read_tarball(package_store, NAME, TARBALL) == b"new bytes"


async def test_opening_a_missing_tarball_is_not_found(package_store: PackageStore) -> None:
    with pytest.raises(NotFound):
        await package_store.open_tarball(NAME, TARBALL)
    await package_store.write_packument(NAME, PACKUMENT, if_absent=True)
    with pytest.raises(NotFound):
        await package_store.open_tarball(NAME, TARBALL)


async def test_stat_gives_the_size_and_etag_that_open_gives(package_store: PackageStore) -> None:
    # The in-memory tarball cache revalidates by comparing these etags.
    data = generated(70 * KiB + 3)
    await package_store.write_tarball(NAME, TARBALL, chunks_of(data))
    info = await package_store.stat_tarball(NAME, TARBALL)
    async with await package_store.open_tarball(NAME, TARBALL) as reader:
        assert (info.size, info.etag) == (reader.size, reader.etag) == (len(data), reader.etag)


async def test_stat_sees_a_replaced_and_a_deleted_tarball(package_store: PackageStore) -> None:
    await package_store.write_tarball(NAME, TARBALL, chunks_of(b"first bytes"))
    first = await package_store.stat_tarball(NAME, TARBALL)
    await package_store.write_tarball(NAME, TARBALL, chunks_of(b"other bytes, longer"))
    second = await package_store.stat_tarball(NAME, TARBALL)
    assert second.size == len(b"other bytes, longer")
    assert second.etag != first.etag
    await package_store.delete_tarball(NAME, TARBALL)
    with pytest.raises(NotFound):
        await package_store.stat_tarball(NAME, TARBALL)


async def test_stat_of_a_missing_tarball_is_not_found(package_store: PackageStore) -> None:
    with pytest.raises(NotFound):
        await package_store.stat_tarball(NAME, TARBALL)


async def test_a_local_path_holds_the_exact_bytes(package_store: PackageStore) -> None:
    # Only a store on local disk has one (sendfile); the others say None.
    data = generated(5 * KiB, seed=3)
    await package_store.write_tarball(NAME, TARBALL, chunks_of(data))
    path = package_store.local_path(NAME, TARBALL)
    if isinstance(package_store, FsPackageStore):
        assert path is not None and path.read_bytes() == data
    else:
        assert path is None


# A stream that breaks before the first multipart part, and one that breaks
# after a part went up (the S3 backends upload 8 MiB parts).
BREAK_AFTER = [pytest.param(100 * KiB, id="small"), pytest.param(9 * MiB, id="after-a-part")]


@pytest.mark.parametrize("break_after", BREAK_AFTER)
async def test_a_stream_that_breaks_stores_nothing(
    package_store: PackageStore, break_after: int
) -> None:
    with pytest.raises(StreamBroke):
        await package_store.write_tarball(NAME, TARBALL, breaking_stream(break_after))
    with pytest.raises(NotFound):
        await package_store.open_tarball(NAME, TARBALL)
    assert TARBALL not in await package_store.list_files(NAME)


@pytest.mark.parametrize("break_after", BREAK_AFTER)
async def test_a_stream_that_breaks_leaves_the_previous_tarball_intact(
    package_store: PackageStore, break_after: int
) -> None:
    await package_store.write_tarball(NAME, TARBALL, chunks_of(b"the good tarball"))
    with pytest.raises(StreamBroke):
        await package_store.write_tarball(NAME, TARBALL, breaking_stream(break_after))
    assert await read_tarball(package_store, NAME, TARBALL) == b"the good tarball"
    assert await package_store.list_files(NAME) == [TARBALL]


LARGE_TARBALL = 24 * MiB
# One 8 MiB multipart part in flight plus overhead; far below the file size.
MEMORY_BOUND = 12 * MiB


async def test_a_large_tarball_streams_in_and_out_in_bounded_memory(
    package_store: PackageStore,
) -> None:
    sent = hashlib.sha256()
    received = hashlib.sha256()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        size = await package_store.write_tarball(
            NAME, TARBALL, generated_chunks(LARGE_TARBALL, seed=42, digest=sent)
        )
        write_peak = tracemalloc.get_traced_memory()[1] - before

        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = 0
        async with await package_store.open_tarball(NAME, TARBALL) as reader:
            reported = reader.size
            async for chunk in reader:
                received.update(chunk)
                read += len(chunk)
        read_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()

    assert (size, reported, read) == (LARGE_TARBALL,) * 3
    assert received.hexdigest() == sent.hexdigest()
    peaks = f"peak memory: writing {write_peak / MiB:.1f} MiB, reading {read_peak / MiB:.1f} MiB"
    assert write_peak < MEMORY_BOUND and read_peak < MEMORY_BOUND, peaks


async def test_deleting_a_tarball_leaves_the_rest_of_the_package(
    package_store: PackageStore,
) -> None:
    await put_package(package_store, NAME, [TARBALL, "left-pad-1.2.0.tgz"])
    await package_store.delete_tarball(NAME, TARBALL)

    with pytest.raises(NotFound):
        await package_store.open_tarball(NAME, TARBALL)
    assert sorted(await package_store.list_files(NAME)) == ["left-pad-1.2.0.tgz", PACKUMENT_FILE]
    assert (await package_store.read_packument(NAME)).data == NAME.encode()


async def test_deleting_a_missing_tarball_is_not_found(package_store: PackageStore) -> None:
    with pytest.raises(NotFound):
        await package_store.delete_tarball(NAME, TARBALL)
    await put_package(package_store, NAME, ["left-pad-1.2.0.tgz"])
    with pytest.raises(NotFound):
        await package_store.delete_tarball(NAME, TARBALL)
