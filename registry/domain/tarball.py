"""What a published tarball holds: its package.json, file count and unpacked size.

The archive is read as a stream (`tarfile` mode `r|gz`), one member after
the other, so it is never held in memory and never extracted. npm strips the
first path component of every entry (normally `package/`), so
`package.json` is looked for one level down whatever that folder is called.
The work is bounded: at most `MAX_ENTRIES` entries are read and
package.json may be at most `MAX_MANIFEST_BYTES`.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from dataclasses import dataclass
from typing import IO, Any

import orjson

from registry.domain.errors import PublishError

MAX_ENTRIES = 100_000
MAX_MANIFEST_BYTES = 5 * 1024 * 1024
SHRINKWRAP = "npm-shrinkwrap.json"


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


def inspect_tarball(source: IO[bytes] | str | os.PathLike[str]) -> TarballFacts:
    """Read a gzipped npm tarball (a binary file object or a path) in one streaming pass.

    Raises PublishError(400) for data that is not a gzipped tar, and
    PublishError(422) for a tarball without a usable package.json, an
    oversized package.json, or more than MAX_ENTRIES entries.
    `file_count` counts regular files (folders excluded) and
    `unpacked_size` adds up their sizes, as npm's `dist` fields do.
    """
    manifest: dict[str, Any] | None = None
    manifest_top: str | None = None
    file_count = 0
    unpacked_size = 0
    has_shrinkwrap = False
    try:
        where: dict[str, Any] = (
            {"name": source} if isinstance(source, (str, os.PathLike)) else {"fileobj": source}
        )
        with tarfile.open(mode="r|gz", **where) as archive:
            for entries, member in enumerate(archive, start=1):
                if entries > MAX_ENTRIES:
                    raise PublishError(422, f"the tarball has more than {MAX_ENTRIES} entries")
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
    if manifest is None:
        raise PublishError(422, "the tarball has no package/package.json")
    return TarballFacts(manifest, file_count, unpacked_size, has_shrinkwrap)
