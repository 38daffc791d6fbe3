"""The two storage contracts: files of a package, and the registry database.

Every backend implements one of the ABCs below and translates its SDK's errors
into the exceptions defined here, so nothing above `storage/` ever sees a
botocore, sqlite3 or OSError exception for an expected condition.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKUMENT_FILE = "package.json"


class StorageError(Exception):
    """A backend failed in a way the caller cannot fix by retrying the same call."""


class NotFound(StorageError):
    """The packument, tarball or item does not exist."""


class Conflict(StorageError):
    """A conditional write lost: someone else wrote first (or the object is gone)."""


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class StoredPackument:
    """Bytes of a packument and the token a conditional write must present."""

    data: bytes
    token: str


@dataclass(frozen=True)
class TarballInfo:
    """A stored tarball's size and etag, without its bytes."""

    size: int
    etag: str
    # Epoch seconds of the last write, where the backend tells it cheaply
    # (gc checks a file did not change under it before deleting it).
    modified: float | None = None


@dataclass(frozen=True)
class StoredFile:
    """One file of a package as a listing sees it, with what gc judges it by.

    `modified` is epoch seconds of the last write, None when the backend
    cannot tell (gc then never deletes the file: its age is unknown).
    `partial` marks the leftover of a write that never finished (a temp file
    of a killed process): never a package file, never listed by `list_files`.
    """

    filename: str
    size: int
    modified: float | None = None
    etag: str = ""
    partial: bool = False


class TarballReader(abc.ABC):
    """An open tarball: its size and etag, and its bytes as an async stream.

    Use as `async with`; iterating yields chunks until the end of the file.
    """

    size: int
    etag: str

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the underlying file or HTTP connection."""

    async def __aenter__(self) -> TarballReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# Maps a package name to its storage folder (the `storage:` of the matching
# `packages:` rule, "" when none), as Verdaccio does.
StorageFolder = Callable[[str], str]


def no_folder(name: str) -> str:
    return ""


class PackageStore(abc.ABC):
    """Files of one package, addressed by package name.

    Keys: `{keyPrefix}/{storage folder}/{name}/package.json` and
    `.../{name}/{tarball file name}`; the same layout on every backend.
    """

    @abc.abstractmethod
    async def read_packument(self, name: str) -> StoredPackument:
        """The packument's bytes and version token; raises NotFound."""

    @abc.abstractmethod
    async def write_packument(
        self,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:
        """Write the packument under one condition and return its new token.

        Exactly one of `if_match` (the token read before) or `if_absent=True`
        must be given: there is no blind overwrite. Raises Conflict when the
        stored document is no longer the one the caller read.
        """

    @abc.abstractmethod
    async def write_tarball(
        self, name: str, filename: str, chunks: AsyncIterable[bytes]
    ) -> int:
        """Store a tarball from a byte stream; return its size.

        The tarball becomes visible only once the stream ended without error:
        if `chunks` raises (say, an integrity check failed), nothing is stored
        and a previous file of that name is untouched.
        """

    @abc.abstractmethod
    async def open_tarball(self, name: str, filename: str) -> TarballReader:
        """Open a stored tarball for streaming; raises NotFound."""

    async def stat_tarball(self, name: str, filename: str) -> TarballInfo:
        """Size and etag of a stored tarball (the same etag `open_tarball` gives); raises NotFound.

        Backends override this with something cheaper than opening the file.
        """
        async with await self.open_tarball(name, filename) as reader:
            return TarballInfo(reader.size, reader.etag)

    # Optional ways to serve a tarball without passing its bytes through
    # Python; a backend that has neither keeps these defaults.

    #: True when `tarball_location` gives URLs (clients are redirected there).
    redirects_tarballs: bool = False

    def local_path(self, name: str, filename: str) -> Path | None:
        """The tarball's file on a local disk (served with sendfile), or None."""
        return None

    async def tarball_location(self, name: str, filename: str) -> str | None:
        """A URL that serves the tarball's exact bytes (presigned, or a CDN), or None.

        It does not check that the tarball exists: callers do (`stat_tarball`).
        """
        return None

    @abc.abstractmethod
    async def delete_tarball(self, name: str, filename: str) -> None:
        """Delete one tarball; raises NotFound when there is none."""

    @abc.abstractmethod
    async def list_files(self, name: str) -> list[str]:
        """File names stored for a package (packument and tarballs), any order."""

    async def list_stored_files(self, name: str) -> list[StoredFile]:
        """Every file stored for a package with its age, leftovers of unfinished writes included.

        For gc, which sweeps orphan tarballs and leftovers only once they are
        old enough. This default knows no ages, so gc deletes nothing of a
        backend that keeps it; the built-in backends override it.
        """
        return [StoredFile(filename, 0) for filename in await self.list_files(name)]

    async def stored_package_names(self) -> AsyncIterator[str]:
        """Every package name with any file stored, with or without a packument; no set order.

        gc's orphan sweep needs the names a killed first publish left only a
        tarball (or a temp file) under. This default knows only the names
        with a packument (`package_names`).
        """
        async for name in self.package_names():
            yield name

    async def delete_partial(self, name: str, filename: str) -> None:
        """Delete a leftover `list_stored_files` gave (`partial=True`); raises NotFound when gone.

        A backend with no such leftovers keeps this default: there is none to delete.
        """
        raise NotFound(f"no leftover {filename} for {name}")

    @abc.abstractmethod
    async def delete_package(self, name: str) -> None:
        """Delete the packument and every tarball of a package; no error if absent."""

    @abc.abstractmethod
    def package_names(self) -> AsyncIterator[str]:
        """Every package name with a packument in the store, scoped ones included, in no set order.

        Only names the store's storage folders put where they were found count;
        none is a miss (no error).
        """

    @abc.abstractmethod
    async def read_root_file(self, filename: str) -> bytes:
        """A file at the top of the store, beside the package folders; raises NotFound.

        Not a package's file: Verdaccio keeps its package list there
        (`.verdaccio-db.json`), and the importer reads it.
        """

    @abc.abstractmethod
    def package_location(self, name: str) -> str:
        """Where a package's files live, as a URL-like string; no I/O, no error on a miss.

        Two stores give the same string for a name exactly when they hold the
        very same files for it (the importer then rewrites in place).
        """

    @abc.abstractmethod
    async def check_health(self) -> None:
        """Raise StorageError when the backend cannot serve."""

    async def open(self) -> None:
        """Create clients and connections; called once before first use."""

    async def close(self) -> None:
        """Release clients and connections."""


async def packument_token(store: PackageStore, name: str) -> str:
    """The version token `read_packument` would give, without reading the document where the
    backend can tell it cheaper (a stat on disk, a HEAD on S3: their `packument_token`
    method); raises NotFound. What a reader holding a parsed copy asks to learn whether
    it is still current.
    """
    cheaper = getattr(store, "packument_token", None)
    if cheaper is not None:
        return str(await cheaper(name))
    return (await store.read_packument(name)).token


class RegistryDatabase(abc.ABC):
    """Registry state as items under (pk, sk) in one table.

    An item is a JSON-compatible dict. Every item carries a version `ver`
    (1 on creation, +1 on each write) that conditional writes compare, and an
    optional `expires` (epoch seconds) after which reads treat it as absent.
    """

    @abc.abstractmethod
    async def get(self, pk: str, sk: str) -> dict[str, Any]:
        """The item, with its `ver`; raises NotFound (also when expired)."""

    @abc.abstractmethod
    async def put(
        self,
        pk: str,
        sk: str,
        item: Mapping[str, Any],
        *,
        if_absent: bool = False,
        if_ver: int | None = None,
        expires: int | None = None,
    ) -> int:
        """Write the item and return its new `ver`.

        `if_absent` writes only when no (unexpired) item exists; `if_ver`
        only when the stored item's `ver` equals it. Raises Conflict otherwise.
        Without either, the write is unconditional.
        """

    @abc.abstractmethod
    async def delete(self, pk: str, sk: str, *, if_ver: int | None = None) -> None:
        """Delete the item; raises NotFound when absent, Conflict on `if_ver` mismatch."""

    async def get_many(self, pk: str, sks: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The items of `sks` under `pk` that exist (unexpired), by sk; a missing one is left out.

        Backends override this with one batch read (a page of search results
        reads its entries at once); this default reads them one by one.
        """
        found: dict[str, dict[str, Any]] = {}
        for sk in dict.fromkeys(sks):
            try:
                found[sk] = await self.get(pk, sk)
            except NotFound:
                pass
        return found

    @abc.abstractmethod
    def query(self, pk: str, sk_prefix: str = "") -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every (sk, item) under pk whose sk starts with sk_prefix, in sk order, all pages."""

    @abc.abstractmethod
    async def check_health(self) -> None:
        """Raise StorageError when the backend cannot serve."""

    async def open(self) -> None:
        """Create clients and connections; called once before first use."""

    async def close(self) -> None:
        """Release clients and connections."""
