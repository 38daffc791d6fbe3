"""The PackageStore contract, on every backend (fs, S3 on moto, S3 on SeaweedFS):
packuments and their conditional writes, whole packages, health.

Tarballs: test_package_store_tarballs.py; names, storage folders and the
listing of a whole store: test_package_store_layout.py.
"""

from __future__ import annotations

import asyncio

import pytest

from storage.base import (
    PACKUMENT_FILE,
    Conflict,
    NotFound,
    PackageStore,
    StorageError,
    packument_token,
)
from tests.contract.store_helpers import (
    NAME,
    PACKUMENT,
    TARBALL,
    put_package,
    set_page_size,
)
from tests.support.store_factory import PackageStoreFactory

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


async def test_the_packument_token_alone_is_the_token_a_read_gives(package_store: PackageStore) -> None:
    with pytest.raises(NotFound):
        await packument_token(package_store, NAME)
    token = await package_store.write_packument(NAME, PACKUMENT, if_absent=True)
    assert await packument_token(package_store, NAME) == token == (await package_store.read_packument(NAME)).token
    new_token = await package_store.write_packument(NAME, PACKUMENT + b" ", if_match=token)
    assert await packument_token(package_store, NAME) == new_token != token
    await package_store.delete_package(NAME)
    with pytest.raises(NotFound):
        await packument_token(package_store, NAME)


async def test_the_packument_token_sees_writes_of_another_instance(
    package_store_factory: PackageStoreFactory,
) -> None:
    first, second = await package_store_factory(), await package_store_factory()
    token = await first.write_packument(NAME, b'{"v":1}', if_absent=True)
    assert await packument_token(first, NAME) == token
    # The same length, written by someone else: only the bytes tell them apart.
    theirs = await second.write_packument(NAME, b'{"v":2}', if_match=token)
    assert await packument_token(first, NAME) == theirs != token
    await second.delete_package(NAME)
    recreated = await second.write_packument(NAME, b'{"v":1}', if_absent=True)
    assert await packument_token(first, NAME) == recreated
    # A write from the token seen that way succeeds (the stored token was not stale).
    assert await first.write_packument(NAME, b'{"v":3}', if_match=recreated)


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
