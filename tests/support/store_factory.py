"""Stores and databases for the contract tests: many instances on one storage, closed at the end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from storage.base import PackageStore, RegistryDatabase, StorageFolder, no_folder


class PackageStoreFactory:
    """Opens package stores that all see the same files (one directory, or one
    bucket + key prefix), and closes every one it opened at the end of the test.
    """

    def __init__(
        self,
        backend: str,
        build: Callable[[StorageFolder], PackageStore],
        build_missing: Callable[[], Awaitable[PackageStore]],
    ) -> None:
        self.backend = backend
        self._build = build
        self._build_missing = build_missing
        self._opened: list[PackageStore] = []
        self._unused: list[PackageStore] = []

    async def __call__(self, folder: StorageFolder = no_folder) -> PackageStore:
        """Another opened instance on the test's storage."""
        if self._unused and folder is no_folder:
            return self._unused.pop()
        store = self._build(folder)
        await store.open()
        self._opened.append(store)
        return store

    async def provision(self, ensure: Callable[[Any], Awaitable[object]]) -> None:
        """Create the bucket through a first instance, handed out by the next call."""
        store = await self()
        await ensure(store)
        self._unused.append(store)

    async def missing_location(self) -> PackageStore:
        """An opened store whose directory or bucket does not exist."""
        store = await self._build_missing()
        self._opened.append(store)
        return store

    async def aclose(self) -> None:
        for store in reversed(self._opened):
            await store.close()
        self._opened.clear()


class RegistryDatabaseFactory:
    """Opens databases that all see the same items (one SQLite file, or one
    table), and closes every one it opened at the end of the test.
    """

    def __init__(self, backend: str, build: Callable[[], RegistryDatabase]) -> None:
        self.backend = backend
        self._build = build
        self._opened: list[RegistryDatabase] = []
        self._unused: list[RegistryDatabase] = []

    async def __call__(self) -> RegistryDatabase:
        """Another opened instance on the test's database."""
        if self._unused:
            return self._unused.pop()
        db = self._build()
        await db.open()
        self._opened.append(db)
        return db

    async def provision(self, ensure: Callable[[Any], Awaitable[object]]) -> None:
        """Create the table through a first instance, handed out by the next call."""
        db = await self()
        await ensure(db)
        self._unused.append(db)

    async def aclose(self) -> None:
        for db in reversed(self._opened):
            await db.close()
        self._opened.clear()
