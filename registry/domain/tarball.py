"""What a published tarball holds: its package.json, file count and unpacked size.

The archive is read as a stream (`tarfile` mode `r|gz`), one member after
the other, so it is never held in memory and never extracted. npm strips the
first path component of every entry (normally `package/`), so
`package.json` is looked for one level down whatever that folder is called.
The work is bounded, because a publish body is hostile input:
- the gzip stream is inflated by `BoundedGunzip`, which stops as soon as the
  inflated bytes pass `Limits.max_unpacked` (config `max_unpacked_size`) or
  `Limits.max_ratio` times the compressed bytes read (a "zip bomb");
- at most `MAX_ENTRIES` entries are read, and package.json may be at most
  `MAX_MANIFEST_BYTES`;
- an entry whose path is absolute or climbs out with `..`, and a link that
  points outside the package folder, refuse the whole tarball;
- inspection runs on its own small thread pool (`inspect_in_pool`), so a
  burst of publishes can never starve password checks on the default one.
"""

from __future__ import annotations

import asyncio
import io
import os
import posixpath
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

import orjson

from registry.domain.errors import PublishError

MAX_ENTRIES = 100_000
MAX_MANIFEST_BYTES = 5 * 1024 * 1024
SHRINKWRAP = "npm-shrinkwrap.json"
COMPRESSED_CHUNK = 64 * 1024
# Threads that inspect tarballs: two, whatever the machine, so inspection
# work queues here instead of filling the pool logins hash passwords on.
INSPECTORS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tarball-inspect")


@dataclass(frozen=True)
class Limits:
    """How far a tarball may inflate before it is refused."""

    max_unpacked: int = 100 * 1024 * 1024
    # npm tarballs of real code compress 3-15 times; 100 leaves room for
    # padded or generated files and still stops a bomb after a few MB.
    max_ratio: int = 100
    # The ratio is judged once this much has been inflated (gzip and tar
    # headers make tiny archives look very compressible).
    ratio_after: int = 1024 * 1024


class BoundedGunzip(io.RawIOBase):
    """A forward-only reader of the inflated bytes of a gzip stream that refuses a bomb.

    Raises PublishError(413) once more than `limits.max_unpacked` bytes came
    out, PublishError(422) once the output passes `limits.max_ratio` times the
    input (after `limits.ratio_after`), EOFError when the compressed data ends
    early, and zlib.error for data that is not gzip.
    """

    def __init__(self, source: IO[bytes], limits: Limits) -> None:
        super().__init__()
        self._source = source
        self._limits = limits
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed bytes not yet fed to the inflater
        self._read_in = 0
        self._given_out = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inflate(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _inflate(self, size: int) -> bytes:
        while not self._done:
            if not self._pending:
                self._pending = self._source.read(COMPRESSED_CHUNK)
                self._read_in += len(self._pending)
                if not self._pending:
                    if self._given_out == 0 and self._read_in == 0:
                        raise EOFError("the tarball is empty")
                    raise EOFError("the compressed data ends before the archive does")
            out = self._inflater.decompress(self._pending, size)
            self._pending = self._inflater.unconsumed_tail
            if self._inflater.eof:
                self._finish_member()
            if out:
                self._count(len(out))
                return out
        return b""

    def _finish_member(self) -> None:
        rest = self._inflater.unused_data
        if rest.lstrip(b"\0"):  # another gzip member follows (concatenated gzip)
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._pending = rest
        else:
            self._done = True

    def _count(self, produced: int) -> None:
        self._given_out += produced
        limits = self._limits
        if self._given_out > limits.max_unpacked:
            raise PublishError(
                413, f"the tarball unpacks to more than {limits.max_unpacked} bytes (max_unpacked_size)"
            )
        if self._given_out > limits.ratio_after and self._given_out > limits.max_ratio * max(self._read_in, 1):
            raise PublishError(
                422, f"the tarball inflates more than {limits.max_ratio} times its compressed size"
            )


@dataclass(frozen=True)
class TarballFacts:
    """The parsed `package/package.json` and the numbers npm puts in `dist`."""

    manifest: dict[str, Any]
    file_count: int
    unpacked_size: int
    has_shrinkwrap: bool = False


def _inner_path(member_name: str) -> tuple[str, str] | None:
    """(top folder, path below it) of an entry, ignoring `./` prefixes; None at top level."""
    parts = [p for p in member_name.split("/") if p and p != "."]
    if len(parts) < 2:
        return None
    return parts[0], "/".join(parts[1:])


def _read_manifest(archive: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    if member.size > MAX_MANIFEST_BYTES:
        raise PublishError(422, f"package.json is larger than {MAX_MANIFEST_BYTES} bytes")
    handle = archive.extractfile(member)
    if handle is None:
        raise PublishError(422, "package.json in the tarball is not a regular file")
    data = handle.read(MAX_MANIFEST_BYTES + 1)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        manifest = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PublishError(422, f"package.json in the tarball is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise PublishError(422, "package.json in the tarball must be a JSON object")
    return manifest


def _refuse_escapes(member: tarfile.TarInfo) -> None:
    """422 for an entry that names a place outside the package folder."""
    name = member.name
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise PublishError(422, f"the tarball has an entry outside its package folder: {name!r}")
    if member.issym() or member.islnk():
        target = member.linkname
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        top = [p for p in name.split("/") if p and p != "."][:1]
        if target.startswith("/") or resolved.startswith("..") or resolved.split("/")[:1] != top:
            raise PublishError(422, f"the tarball has a link out of its package folder: {name!r} -> {target!r}")


def inspect_tarball(
    source: IO[bytes] | str | os.PathLike[str], limits: Limits | None = None
) -> TarballFacts:
    """Read a gzipped npm tarball (a binary file object or a path) in one streaming pass.

    Raises PublishError(400) for data that is not a gzipped tar,
    PublishError(413) for one that unpacks to more than `limits.max_unpacked`,
    and PublishError(422) for a tarball without a usable package.json, an
    oversized package.json, more than MAX_ENTRIES entries, an entry or link
    outside the package folder, or a compression ratio past `limits.max_ratio`.
    `file_count` counts regular files (folders excluded) and
    `unpacked_size` adds up their sizes, as npm's `dist` fields do.
    """
    manifest: dict[str, Any] | None = None
    manifest_top: str | None = None
    file_count = 0
    unpacked_size = 0
    has_shrinkwrap = False
    limits = limits or Limits()
    opened = open(source, "rb") if isinstance(source, (str, os.PathLike)) else None  # noqa: SIM115
    try:
        inflated = BoundedGunzip(opened or source, limits)  # type: ignore[arg-type]
        with tarfile.open(mode="r|", fileobj=inflated) as archive:
            for entries, member in enumerate(archive, start=1):
                if entries > MAX_ENTRIES:
                    raise PublishError(422, f"the tarball has more than {MAX_ENTRIES} entries")
                _refuse_escapes(member)
                if not member.isfile():
                    continue
                file_count += 1
                unpacked_size += member.size
                inner = _inner_path(member.name)
                if inner is None:
                    continue
                top, path = inner
                if path == "package.json":
                    # Prefer npm's own `package/` folder when an archive has several.
                    if manifest is None or (manifest_top != "package" and top == "package"):
                        manifest = _read_manifest(archive, member)
                        manifest_top = top
                elif path == SHRINKWRAP:
                    has_shrinkwrap = True
    except PublishError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise PublishError(400, f"the tarball is not a valid gzipped tar archive: {exc}") from None
    finally:
        if opened is not None:
            opened.close()
    if manifest is None:
        raise PublishError(422, "the tarball has no package/package.json")
    return TarballFacts(manifest, file_count, unpacked_size, has_shrinkwrap)


async def inspect_in_pool(source: IO[bytes], limits: Limits) -> TarballFacts:
    """`inspect_tarball` on the inspectors' own threads (see INSPECTORS)."""
    source.seek(0)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(INSPECTORS, inspect_tarball, source, limits)
