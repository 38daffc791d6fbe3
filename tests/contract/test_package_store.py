"""The PackageStore contract, on every backend (fs, S3 on moto, S3 on SeaweedFS)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import tracemalloc
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from storage.base import PACKUMENT_FILE, Conflict, NotFound, PackageStore, StorageError
from storage.fs import FsPackageStore

if TYPE_CHECKING:
    from tests.conftest import PackageStoreFactory

KiB = 1024
MiB = 1024 * KiB

NAME = "left-pad"
TARBALL = "left-pad-1.3.0.tgz"
PACKUMENT = '{"name":"left-pad","description":"pads ☕ 左","versions":{}}'.encode()


class StreamBroke(Exception):
    """Raised by a test stream mid-way, as a failed integrity check would."""


def generated(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


async def chunks_of(data: bytes, size: int = 64 * KiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def generated_chunks(
    total: int, seed: int, chunk: int = 256 * KiB, digest: hashlib._Hash | None = None
) -> AsyncIterator[bytes]:
    """`total` deterministic bytes made on the fly, never held whole."""
    rng = random.Random(seed)
    remaining = total
    while remaining:
        piece = rng.randbytes(min(chunk, remaining))
        remaining -= len(piece)
        if digest is not None:
            digest.update(piece)
        yield piece


async def breaking_stream(size: int) -> AsyncIterator[bytes]:
    async for piece in generated_chunks(size, seed=7):
        yield piece
    raise StreamBroke("integrity check failed")


async def read_tarball(store: PackageStore, name: str, filename: str) -> bytes:
    async with await store.open_tarball(name, filename) as reader:
        return b"".join([chunk async for chunk in reader])


async def put_package(store: PackageStore, name: str, tarballs: list[str]) -> None:
    await store.write_packument(name, name.encode(), if_absent=True)
    for filename in tarballs:
        await store.write_tarball(name, filename, chunks_of(f"{name}/{filename}".encode()))


def set_page_size(store: PackageStore, size: int) -> None:
    """Make the store page its listings by `size`, where it pages at all (S3)."""
    if hasattr(store, "page_size"):
        store.page_size = size  # type: ignore[attr-defined]


# -- packuments ---------------------------------------------------------------


async def test_packument_round_trips_bytes_and_token(package_store: PackageStore) -> None:
    token = await package_store.write_packument(NAME, PACKUMENT, if_absent=True)
    assert isinstance(token, str) and token

    stored = await package_store.read_packument(NAME)
    assert stored.data == PACKUMENT
    assert stored.token == token

    changed = PACKUMENT.replace(b"{}", b'{"1.3.0":{}}')
    new_token = await package_store.write_packument(NAME, changed, if_match=token)
    assert new_token != token
    stored = await package_store.read_packument(NAME)
    assert (stored.data, stored.token) == (changed, new_token)


async def test_reading_a_missing_packument_is_not_found(package_store: PackageStore) -> None:
    with pytest.raises(NotFound):
        await package_store.read_packument(NAME)


async def test_creating_a_packument_twice_conflicts(package_store: PackageStore) -> None:
    await package_store.write_packument(NAME, b"first", if_absent=True)
    with pytest.raises(Conflict):
        await package_store.write_packument(NAME, b"second", if_absent=True)
    assert (await package_store.read_packument(NAME)).data == b"first"


async def test_writing_with_a_stale_token_conflicts(package_store: PackageStore) -> None:
    stale = await package_store.write_packument(NAME, b"v1", if_absent=True)
    await package_store.write_packument(NAME, b"v2", if_match=stale)
    with pytest.raises(Conflict):
        await package_store.write_packument(NAME, b"v3", if_match=stale)
    assert (await package_store.read_packument(NAME)).data == b"v2"


async def test_writing_with_a_token_of_a_deleted_packument_conflicts(
    package_store: PackageStore,
) -> None:
    token = await package_store.write_packument(NAME, b"v1", if_absent=True)
    await package_store.delete_package(NAME)
    with pytest.raises(Conflict):
        await package_store.write_packument(NAME, b"v2", if_match=token)
    with pytest.raises(NotFound):
        await package_store.read_packument(NAME)


async def test_two_writers_from_the_same_token_exactly_one_wins(
    package_store_factory: PackageStoreFactory,
) -> None:
    first, second = await package_store_factory(), await package_store_factory()
    await first.write_packument(NAME, b"v0", if_absent=True)
    for round_ in range(3):
        token = (await first.read_packument(NAME)).token
        ours, theirs = f"first {round_}".encode(), f"second {round_}".encode()
        results = await asyncio.gather(
            first.write_packument(NAME, ours, if_match=token),
            second.write_packument(NAME, theirs, if_match=token),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, str)]
        losers = [r for r in results if isinstance(r, Conflict)]
        assert len(winners) == 1 and len(losers) == 1, results
        expected = ours if isinstance(results[0], str) else theirs
        stored = await second.read_packument(NAME)
        assert (stored.data, stored.token) == (expected, winners[0])


async def test_two_creators_of_a_new_packument_exactly_one_wins(
    package_store_factory: PackageStoreFactory,
) -> None:
    first, second = await package_store_factory(), await package_store_factory()
    results = await asyncio.gather(
        first.write_packument(NAME, b"first", if_absent=True),
        second.write_packument(NAME, b"second", if_absent=True),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "str"], results
    expected = b"first" if isinstance(results[0], str) else b"second"
    assert (await first.read_packument(NAME)).data == expected


async def test_writing_a_packument_requires_exactly_one_condition(
    package_store: PackageStore,
) -> None:
    with pytest.raises(ValueError):
        await package_store.write_packument(NAME, PACKUMENT)
    with pytest.raises(ValueError):
        await package_store.write_packument(NAME, PACKUMENT, if_match='"x"', if_absent=True)
    with pytest.raises(NotFound):
        await package_store.read_packument(NAME)


# -- names --------------------------------------------------------------------


async def test_scoped_names_and_names_sharing_a_prefix_stay_apart(
    package_store: PackageStore,
) -> None:
    packages = {
        "lodash": ["lodash-4.17.21.tgz"],
        "lodash.merge": ["lodash.merge-4.6.2.tgz"],
        "@acme/ui": ["ui-1.0.0.tgz"],
        "@acme/ui-kit": ["ui-kit-2.0.0.tgz"],
    }
    for name, tarballs in packages.items():
        await put_package(package_store, name, tarballs)
    for name, tarballs in packages.items():
        assert (await package_store.read_packument(name)).data == name.encode()
        assert sorted(await package_store.list_files(name)) == sorted([PACKUMENT_FILE, *tarballs])
        assert await read_tarball(package_store, name, tarballs[0]) == f"{name}/{tarballs[0]}".encode()

    await package_store.delete_package("lodash")
    await package_store.delete_package("@acme/ui")

    for gone in ("lodash", "@acme/ui"):
        with pytest.raises(NotFound):
            await package_store.read_packument(gone)
        assert await package_store.list_files(gone) == []
    for kept in ("lodash.merge", "@acme/ui-kit"):
        assert (await package_store.read_packument(kept)).data == kept.encode()
        tarball = packages[kept][0]
        assert await read_tarball(package_store, kept, tarball) == f"{kept}/{tarball}".encode()


async def test_storage_folder_keeps_its_packages_apart_from_the_root(
    package_store_factory: PackageStoreFactory,
) -> None:
    in_folder = await package_store_factory(
        folder=lambda name: "scoped" if name.startswith("@") else ""
    )
    plain = await package_store_factory()
    await put_package(in_folder, "@acme/ui", ["ui-1.0.0.tgz"])

    assert (await in_folder.read_packument("@acme/ui")).data == b"@acme/ui"
    with pytest.raises(NotFound):
        await plain.read_packument("@acme/ui")
    assert await plain.list_files("@acme/ui") == []


async def test_deleting_a_package_named_like_a_storage_folder_keeps_that_folder(
    package_store_factory: PackageStoreFactory,
) -> None:
    # `storage: scoped` puts @acme/ui under scoped/@acme/ui/; a package that
    # is itself called "scoped" lives in scoped/ too.
    in_folder = await package_store_factory(
        folder=lambda name: "scoped" if name.startswith("@") else ""
    )
    plain = await package_store_factory()
    await put_package(in_folder, "@acme/ui", ["ui-1.0.0.tgz"])
    await put_package(plain, "scoped", ["scoped-1.0.0.tgz"])

    assert sorted(await plain.list_files("scoped")) == [PACKUMENT_FILE, "scoped-1.0.0.tgz"]
    await plain.delete_package("scoped")

    assert await plain.list_files("scoped") == []
    assert (await in_folder.read_packument("@acme/ui")).data == b"@acme/ui"
    assert await read_tarball(in_folder, "@acme/ui", "ui-1.0.0.tgz") == b"@acme/ui/ui-1.0.0.tgz"


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


# -- packages -----------------------------------------------------------------


async def test_list_files_names_the_packument_and_every_tarball(
    package_store: PackageStore,
) -> None:
    assert await package_store.list_files(NAME) == []
    await put_package(package_store, NAME, [TARBALL, "left-pad-1.2.0.tgz"])
    assert sorted(await package_store.list_files(NAME)) == sorted(
        [PACKUMENT_FILE, TARBALL, "left-pad-1.2.0.tgz"]
    )


async def test_delete_package_removes_every_file_across_listing_pages(
    package_store: PackageStore,
) -> None:
    set_page_size(package_store, 2)
    tarballs = [f"left-pad-1.{minor}.0.tgz" for minor in range(6)]
    await put_package(package_store, NAME, tarballs)
    await put_package(package_store, "left-pad-extra", ["left-pad-extra-1.0.0.tgz"])
    assert sorted(await package_store.list_files(NAME)) == sorted([PACKUMENT_FILE, *tarballs])

    await package_store.delete_package(NAME)

    assert await package_store.list_files(NAME) == []
    with pytest.raises(NotFound):
        await package_store.read_packument(NAME)
    for tarball in tarballs:
        with pytest.raises(NotFound):
            await package_store.open_tarball(NAME, tarball)
    assert sorted(await package_store.list_files("left-pad-extra")) == [
        "left-pad-extra-1.0.0.tgz",
        PACKUMENT_FILE,
    ]


async def test_deleting_a_missing_package_is_no_error(package_store: PackageStore) -> None:
    await package_store.delete_package(NAME)
    assert await package_store.list_files(NAME) == []


# -- health -------------------------------------------------------------------


async def test_check_health_passes_on_a_working_store(package_store: PackageStore) -> None:
    await package_store.check_health()


async def test_check_health_fails_when_the_bucket_or_directory_is_missing(
    package_store_factory: PackageStoreFactory,
) -> None:
    store = await package_store_factory.missing_location()
    with pytest.raises(StorageError):
        await store.check_health()
