"""Backends chosen by name: the config's store name to the classes that serve it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import ConfigError, PackageStore, RegistryDatabase, StorageFolder, no_folder
from .dynamodb import DYNAMO_KEYS, DynamoRegistryDatabase
from .fs import FsPackageStore
from .s3 import S3_KEYS, S3PackageStore
from .sqlite import SqliteRegistryDatabase

# Dot-prefixed: no npm package name starts with a dot, so it never collides.
SQLITE_FILE = ".tarhold-db.sqlite3"


def validate_s3_section(section: Mapping[str, Any]) -> None:
    """Check every key of `store: aws-s3-storage:` at config load time."""
    for key in section:
        if key not in S3_KEYS | DYNAMO_KEYS:
            raise ConfigError(f"store.aws-s3-storage.{key}", "unknown option")
    S3PackageStore.from_config(section)
    DynamoRegistryDatabase.from_config(section)


def build_package_store(
    backend: str,
    *,
    path: str | None = None,
    section: Mapping[str, Any] | None = None,
    folder: StorageFolder = no_folder,
    where: str | None = None,
) -> PackageStore:
    """The package store a config names (a directory, or an S3 section), not yet opened.

    `where` names the S3 section in errors when it is not the config's own
    (say, a command-line option).
    """
    if backend == "fs":
        if not path:
            raise ConfigError(where or "storage", "must be a directory path")
        return FsPackageStore(path, folder)
    if backend == "aws-s3-storage":
        if where is None:
            return S3PackageStore.from_config(section or {}, folder)
        return S3PackageStore.from_config(section or {}, folder, where)
    raise ConfigError("store", f"unknown store {backend!r}")


def build_backends(
    backend: str,
    *,
    path: str | None = None,
    section: Mapping[str, Any] | None = None,
    folder: StorageFolder = no_folder,
) -> tuple[PackageStore, RegistryDatabase]:
    """The package store and the registry database a config names, not yet opened."""
    store = build_package_store(backend, path=path, section=section, folder=folder)
    if backend == "fs":
        assert path is not None  # build_package_store checked it
        return store, SqliteRegistryDatabase(Path(path) / SQLITE_FILE)
    return store, DynamoRegistryDatabase.from_config(section or {})
