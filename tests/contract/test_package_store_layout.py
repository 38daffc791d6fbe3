"""The PackageStore contract for where packages live, on every backend: scoped
names, storage folders, every package of a store, files beside the packages,
and when two stores hold the very same files.
"""

from __future__ import annotations

import pytest

from storage.base import PACKUMENT_FILE, NotFound, PackageStore, StorageError
from tests.contract.store_helpers import (
    chunks_of,
    put_package,
    put_root_file,
    read_tarball,
    set_page_size,
)
from tests.support.store_factory import PackageStoreFactory

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


def in_scoped_folder(name: str) -> str:
    """`storage: scoped` for scoped names, as a `packages:` rule would say."""
    return "scoped" if name.startswith("@") else ""


# -- every package of a store ---------------------------------------------------


async def test_package_names_finds_every_packument_across_listing_pages(
    package_store: PackageStore,
) -> None:
    set_page_size(package_store, 2)
    names = ["lodash", "lodash.merge", "@acme/ui", "@acme/ui-kit", "scoped"]
    for name in names:
        await put_package(package_store, name, [f"{name.split('/')[-1]}-1.0.0.tgz"])
    # Tarballs without a packument are no package (an import broke off, say).
    await package_store.write_tarball("orphan", "orphan-1.0.0.tgz", chunks_of(b"orphan"))

    found = [name async for name in package_store.package_names()]

    assert sorted(found) == sorted(names)


async def test_package_names_of_an_empty_store_is_empty(package_store: PackageStore) -> None:
    assert [name async for name in package_store.package_names()] == []


async def test_package_names_reads_the_storage_folders_of_the_store(
    package_store_factory: PackageStoreFactory,
) -> None:
    in_folder = await package_store_factory(folder=in_scoped_folder)
    plain = await package_store_factory()
    await put_package(in_folder, "@acme/ui", ["ui-1.0.0.tgz"])
    await put_package(in_folder, "lodash", ["lodash-4.17.21.tgz"])
    await put_package(plain, "scoped", ["scoped-1.0.0.tgz"])
    await put_package(plain, "@acme/plain", ["plain-1.0.0.tgz"])

    # scoped/@acme/ui is @acme/ui only where `storage: scoped` puts it there;
    # to a store without folders it is nothing it would have written.
    assert sorted([n async for n in in_folder.package_names()]) == ["@acme/ui", "lodash", "scoped"]
    assert sorted([n async for n in plain.package_names()]) == ["@acme/plain", "lodash", "scoped"]


# -- files beside the packages ------------------------------------------------------


async def test_a_root_file_reads_back_its_exact_bytes(package_store: PackageStore) -> None:
    data = b'{"list":["left-pad"],"secret":"s3cr3t"}'
    await put_root_file(package_store, ".verdaccio-db.json", data)
    await put_package(package_store, "left-pad", ["left-pad-1.3.0.tgz"])

    assert await package_store.read_root_file(".verdaccio-db.json") == data
    # Not a package: listing the store does not take it for one.
    assert [n async for n in package_store.package_names()] == ["left-pad"]


async def test_reading_a_missing_root_file_is_not_found(package_store: PackageStore) -> None:
    with pytest.raises(NotFound):
        await package_store.read_root_file(".verdaccio-db.json")
    await put_package(package_store, "left-pad", [])
    with pytest.raises(NotFound):
        await package_store.read_root_file("left-pad")  # a package's folder is no root file


@pytest.mark.parametrize("filename", ["", ".", "..", "../x", "left-pad/package.json"])
async def test_a_root_file_name_with_a_path_in_it_is_refused(
    package_store: PackageStore, filename: str
) -> None:
    with pytest.raises(StorageError):
        await package_store.read_root_file(filename)


# -- the same files -------------------------------------------------------------------


async def test_stores_on_the_same_location_give_the_same_package_location(
    package_store_factory: PackageStoreFactory,
) -> None:
    first, second = await package_store_factory(), await package_store_factory()
    for name in ("left-pad", "@acme/ui"):
        assert first.package_location(name) == second.package_location(name)
    assert first.package_location("left-pad") != first.package_location("left-pad-extra")
    assert first.package_location("@acme/ui") != first.package_location("@acme/ui-kit")


async def test_another_location_or_storage_folder_gives_another_package_location(
    package_store_factory: PackageStoreFactory,
) -> None:
    plain = await package_store_factory()
    in_folder = await package_store_factory(folder=in_scoped_folder)
    elsewhere = await package_store_factory.missing_location()

    assert plain.package_location("@acme/ui") != in_folder.package_location("@acme/ui")
    assert plain.package_location("left-pad") == in_folder.package_location("left-pad")
    assert plain.package_location("left-pad") != elsewhere.package_location("left-pad")
