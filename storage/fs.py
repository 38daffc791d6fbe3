"""PackageStore on a local directory: the embedded default.

Packuments are written to a temp file and renamed over the old one while an
exclusive `flock` on the package's lock file is held, so two processes sharing
the directory get the same compare-and-swap semantics S3 gives with IfMatch.
Tarballs stream to a temp file and are renamed into place when complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from .base import (
    PACKUMENT_FILE,
    ConfigError,
    Conflict,
    NotFound,
    PackageStore,
    StorageError,
    StorageFolder,
    StoredFile,
    StoredPackument,
    TarballInfo,
    TarballReader,
    no_folder,
)
from .layout import MAX_DEPTH, name_from_parts

LOG = logging.getLogger(__name__)

LOCK_FILE = ".lock"
TEMP_PREFIX = ".tmp-"  # a write in progress, or the leftover of one that was killed
READ_CHUNK = 256 * 1024
TOKENS_REMEMBERED = 10_000  # packument tokens known by their file's identity (then cleared)


def content_token(data: bytes) -> str:
    """The version token of a packument on disk: a hash of its bytes."""
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


class FsTarballReader(TarballReader):
    def __init__(self, path: Path, fh: BinaryIO, size: int, etag: str) -> None:
        self.path = path
        self._fh = fh
        self.size = size
        self.etag = etag

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        while True:
            chunk = await loop.run_in_executor(None, self._fh.read, READ_CHUNK)
            if not chunk:
                return
            yield chunk

    async def aclose(self) -> None:
        self._fh.close()


class FsPackageStore(PackageStore):
    """Files under `root/{storage folder}/{name}/`."""

    def __init__(self, root: str | Path, folder: StorageFolder = no_folder) -> None:
        self.root = Path(root)
        self.folder = folder
        # path -> (file identity, token): every write renames a new file into place, so a stat
        # tells whether a packument's token (a hash of its bytes) holds. Threads use it.
        self._tokens: dict[Path, tuple[tuple[int, int, int, int], str]] = {}

    @classmethod
    def from_config(
        cls, storage: Any, folder: StorageFolder = no_folder, key: str = "storage"
    ) -> FsPackageStore:
        if not isinstance(storage, str) or not storage:
            raise ConfigError(key, "must be a directory path")
        return cls(storage, folder)

    async def open(self) -> None:
        try:
            # Owner-only when tarhold creates it (private packages live here).
            await asyncio.to_thread(self.root.mkdir, mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"storage directory {self.root}: {exc.strerror}") from exc

    # -- layout -------------------------------------------------------------

    def package_dir(self, name: str) -> Path:
        folder = self.folder(name)
        base = self.root / folder if folder else self.root
        path = base / name
        # Names are validated before they reach storage; this is the last guard.
        if ".." in Path(name).parts or name.startswith(("/", ".")):
            raise StorageError(f"unsafe package name {name!r}")
        return path

    def file_path(self, name: str, filename: str) -> Path:
        if "/" in filename or filename.startswith("."):
            raise StorageError(f"unsafe file name {filename!r}")
        return self.package_dir(name) / filename

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[Path]:
        directory = self.package_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / LOCK_FILE, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                # A concurrent delete_package may have removed the directory
                # while we waited for the lock.
                directory.mkdir(parents=True, exist_ok=True)
                yield directory
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- packuments ---------------------------------------------------------

    async def read_packument(self, name: str) -> StoredPackument:
        path = self.file_path(name, PACKUMENT_FILE)
        try:
            # Hashed in the thread too: a large document's hash takes a while.
            return await asyncio.to_thread(self._read_packument, path)
        except FileNotFoundError:
            raise NotFound(f"no packument for {name}") from None
        except OSError as exc:
            raise StorageError(f"reading {path}: {exc.strerror}") from exc

    async def packument_token(self, name: str) -> str:
        path = self.file_path(name, PACKUMENT_FILE)
        held = self._tokens.get(path)
        if held is not None:
            # A known document is checked by one stat of a cached inode, on the loop:
            # a hop to a thread costs far more (it was a third of the server's CPU in
            # a warm `npm ci`, one per tarball request once the packument's TTL passed).
            try:
                if held[0] == _identity(os.stat(path)):
                    return held[1]
            except FileNotFoundError:
                raise NotFound(f"no packument for {name}") from None
            except OSError as exc:
                raise StorageError(f"reading {path}: {exc.strerror}") from exc
        return (await self.read_packument(name)).token

    def _read_packument(self, path: Path) -> StoredPackument:
        with open(path, "rb") as fh:
            st, data = os.fstat(fh.fileno()), fh.read()
        token = content_token(data)
        self._remember_token(path, st, token)
        return StoredPackument(data, token)

    def _token_of(self, path: Path) -> str:
        held = self._tokens.get(path)  # a stat when the file is known, else a read
        if held is not None and held[0] == _identity(os.stat(path)):
            return held[1]
        return self._read_packument(path).token

    def _remember_token(self, path: Path, st: os.stat_result, token: str) -> None:
        if len(self._tokens) >= TOKENS_REMEMBERED:
            self._tokens.clear()
        self._tokens[path] = (_identity(st), token)

    async def write_packument(
        self, name: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False,
    ) -> str:
        if (if_match is None) == (not if_absent):
            raise ValueError("write_packument needs exactly one of if_match, if_absent")
        return await asyncio.to_thread(self._write_packument, name, data, if_match)

    def _write_packument(self, name: str, data: bytes, if_match: str | None) -> str:
        try:
            with self._locked(name) as directory:
                target = directory / PACKUMENT_FILE
                try:
                    current: str | None = self._token_of(target)
                except FileNotFoundError:
                    current = None
                if current != if_match:
                    raise Conflict(f"packument of {name} changed since it was read")
                _atomic_write(directory, target, data)
                token = content_token(data)
                self._remember_token(target, os.stat(target), token)
        except OSError as exc:
            raise StorageError(f"writing packument of {name}: {exc.strerror}") from exc
        return token

    # -- tarballs -----------------------------------------------------------

    async def write_tarball(
        self, name: str, filename: str, chunks: AsyncIterable[bytes]
    ) -> int:
        target = self.file_path(name, filename)
        directory = target.parent
        try:
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
        except OSError as exc:
            raise StorageError(f"writing {filename}: {exc.strerror}") from exc
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    # A page-cache write of one chunk is cheaper than a thread hop.
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
            await asyncio.to_thread(os.replace, tmp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise StorageError(f"writing {filename}: {exc.strerror}") from exc
            raise
        return size

    async def open_tarball(self, name: str, filename: str) -> TarballReader:
        path = self.file_path(name, filename)
        try:
            fh = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise NotFound(f"no tarball {filename} for {name}") from None
        except OSError as exc:
            raise StorageError(f"opening {filename}: {exc.strerror}") from exc
        st = os.fstat(fh.fileno())
        return FsTarballReader(path, fh, st.st_size, _file_etag(st))

    async def stat_tarball(self, name: str, filename: str) -> TarballInfo:
        path = self.file_path(name, filename)
        try:
            # One stat of a cached inode: cheaper on the loop than a thread hop.
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"no tarball {filename} for {name}") from None
        except OSError as exc:
            raise StorageError(f"reading {filename}: {exc.strerror}") from exc
        return TarballInfo(st.st_size, _file_etag(st), st.st_mtime)

    def local_path(self, name: str, filename: str) -> Path | None:
        return self.file_path(name, filename)

    async def delete_tarball(self, name: str, filename: str) -> None:
        await _unlink(self.file_path(name, filename), f"no tarball {filename} for {name}")

    async def list_files(self, name: str) -> list[str]:
        return await asyncio.to_thread(self._list_files, name)

    def _list_files(self, name: str) -> list[str]:
        try:
            entries = list(os.scandir(self.package_dir(name)))
        except FileNotFoundError:
            return []
        return [e.name for e in entries if e.is_file() and not e.name.startswith(".")]

    async def list_stored_files(self, name: str) -> list[StoredFile]:
        return await asyncio.to_thread(self._list_stored_files, name)

    def _list_stored_files(self, name: str) -> list[StoredFile]:
        found: list[StoredFile] = []
        try:
            entries = list(os.scandir(self.package_dir(name)))
        except FileNotFoundError:
            return []
        for entry in entries:
            partial = entry.name.startswith(TEMP_PREFIX)
            if entry.name.startswith(".") and not partial:
                continue  # the lock file, or something not ours
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except FileNotFoundError:  # renamed or deleted since the scan
                continue
            found.append(StoredFile(entry.name, st.st_size, st.st_mtime, _file_etag(st), partial))
        return found

    async def stored_package_names(self) -> AsyncIterator[str]:
        for parts in await asyncio.to_thread(_package_dirs, self.root, False):
            name = name_from_parts(parts, self.folder)
            if name is not None:
                yield name

    async def delete_partial(self, name: str, filename: str) -> None:
        if not filename.startswith(TEMP_PREFIX) or "/" in filename:
            raise StorageError(f"{filename!r} is not a leftover of an unfinished write")
        await _unlink(self.package_dir(name) / filename, f"no leftover {filename} for {name}")

    async def delete_package(self, name: str) -> None:
        await asyncio.to_thread(self._delete_package, name)

    def _delete_package(self, name: str) -> None:
        directory = self.package_dir(name)
        try:
            with self._locked(name):
                # Only the package's own files: a sub-directory is another
                # package (a storage folder may share the package's name).
                # The lock file stays: a writer may be waiting on it, and a
                # fresh one would let that writer and a newcomer both "hold" it.
                for entry in os.scandir(directory):
                    if entry.is_file() and entry.name != LOCK_FILE:
                        os.unlink(entry.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"deleting package {name}: {exc.strerror}") from exc

    async def package_names(self) -> AsyncIterator[str]:
        # The walk is one blocking call; the names it finds are few next to
        # the files it passes, so they are collected before any is yielded.
        for parts in await asyncio.to_thread(_package_dirs, self.root, True):
            name = name_from_parts(parts, self.folder)
            if name is not None:
                yield name

    async def read_root_file(self, filename: str) -> bytes:
        if not filename or "/" in filename or filename in (".", ".."):
            raise StorageError(f"unsafe file name {filename!r}")
        path = self.root / filename
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):  # a directory is a package, not this file
            raise NotFound(f"no file {filename} in {self.root}") from None
        except OSError as exc:
            raise StorageError(f"reading {path}: {exc.strerror}") from exc

    def package_location(self, name: str) -> str:
        # Resolved, so two spellings of one directory (a symlink, "..") agree.
        return self.package_dir(name).resolve().as_uri()

    async def check_health(self) -> None:
        def probe() -> None:
            if not self.root.is_dir():
                raise StorageError(f"storage directory {self.root} does not exist")
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise StorageError(f"storage directory {self.root} is not writable")

        await asyncio.to_thread(probe)

    def describe(self) -> Mapping[str, str]:
        return {"type": "fs", "path": str(self.root)}


def _package_dirs(root: Path, packument_only: bool) -> list[list[str]]:
    """The directories under root (as path parts) that hold a packument, or,
    unless `packument_only`, any package file: a tarball or a temp file."""
    found: list[list[str]] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        if PACKUMENT_FILE in files or (not packument_only and any(_is_package_file(f) for f in files)):
            relative = Path(directory).relative_to(root).parts
            if 1 <= len(relative) <= MAX_DEPTH:
                found.append(list(relative))
    return found


def _is_package_file(filename: str) -> bool:
    return filename.endswith(".tgz") or filename.startswith(TEMP_PREFIX)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _file_etag(st: os.stat_result) -> str:
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'


def _atomic_write(directory: Path, target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


__all__ = ["FsPackageStore", "FsTarballReader", "content_token"]


async def _unlink(path: Path, missing: str) -> None:
    """Delete one file; NotFound(missing) when it is not there."""
    try:
        await asyncio.to_thread(path.unlink)
    except FileNotFoundError:
        raise NotFound(missing) from None
    except OSError as exc:
        raise StorageError(f"deleting {path.name}: {exc.strerror}") from exc
