"""Backends chosen by name: the config's store name to the classes that serve it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import ConfigError, PackageStore, RegistryDatabase, StorageFolder, no_folder

# Dot-prefixed: no npm package name starts with a dot, so it never collides.
SQLITE_FILE = ".tarhold-db.sqlite3"


def validate_s3_section(section: Mapping[str, Any]) -> None:
    """Check every key of `store: aws-s3-storage:` at config load time."""
    from .dynamodb import DYNAMO_KEYS, DynamoRegistryDatabase
    from .s3 import S3_KEYS, S3PackageStore

    for key in section:
        if key not in S3_KEYS | DYNAMO_KEYS:
            raise ConfigError(f"store.aws-s3-storage.{key}", "unknown option")
    S3PackageStore.from_config(section)
    DynamoRegistryDatabase.from_config(section)


def build_backends(
    backend: str,
    *,
    path: str | None = None,
    section: Mapping[str, Any] | None = None,
    folder: StorageFolder = no_folder,
) -> tuple[PackageStore, RegistryDatabase]:
    """The package store and the registry database a config names, not yet opened."""
    if backend == "fs":
        from pathlib import Path

        from .fs import FsPackageStore
        from .sqlite import SqliteRegistryDatabase

        if not path:
            raise ConfigError("storage", "must be a directory path")
        return FsPackageStore(path, folder), SqliteRegistryDatabase(Path(path) / SQLITE_FILE)
    if backend == "aws-s3-storage":
        from .dynamodb import DynamoRegistryDatabase
        from .s3 import S3PackageStore

        section = section or {}
        return S3PackageStore.from_config(section, folder), DynamoRegistryDatabase.from_config(section)
    raise ConfigError("store", f"unknown store {backend!r}")
