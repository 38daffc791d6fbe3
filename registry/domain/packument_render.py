"""The bytes a packument is served as: full or abbreviated, with its gzip and ETag.

Built once per document, base URL and variant (`Packages.render` caches them),
never per request. The JSON is written version by version, so rendering a
multi-MB document holds the parsed document and one batch of rewritten
manifests besides what it writes: never a rewritten copy of the whole
document, nor the output twice. A large document's variants are written to a
file (`spill`), read back a slice at a time when sent, never held in memory:
a 20 MB packument's two variants are 35 MB. The bytes are exactly
`orjson.dumps(view)` of the view `packument_views` describes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import logging
import os
import shutil
import tempfile
import weakref
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from registry.domain.packument_views import (
    abbreviate_manifest,
    abbreviated_top,
    rewrite_manifest,
)
from uplinks.documents import MIRROR_MARK

LOG = logging.getLogger(__name__)

FULL = "application/json"
ABBREVIATED = "application/vnd.npm.install-v1+json"
GZIP_MIN_BYTES = 1024
# Versions serialized per orjson call: few calls, and a small batch held at once.
BATCH = 256
# Stands for the versions in the serialized top level: a raw NUL byte is never
# in orjson's output (it escapes control characters in strings), so it is found
# exactly once.
_HOLE = b"\x00"
# A spilled rendering is deleted this long after the cache let go of it: a
# response may be about to send it.
SPILL_GRACE = 60.0

Write = Callable[[bytes | memoryview], Any]


@dataclass(frozen=True)
class Rendered:
    """The bytes of one variant of a packument, built once, served many times.

    A spilled variant's body is the content of `file` (`body` is empty);
    its gzip, a tenth of it, is held like any other.
    """

    body: bytes
    etag: str
    gzipped: bytes | None = None
    file: Path | None = None
    size: int = 0  # of the body, held or in `file`

    @property
    def weight(self) -> int:
        """Bytes it keeps, in memory or on disk: what the render cache counts."""
        return self.size + len(self.gzipped or b"")


class SpillFiles:
    """The directory of one process's spilled renderings (made at the first one, removed
    with the process), and their deletion once the render cache lets go of them."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._failed = False

    def directory(self) -> Path | None:
        """Where to write a large document's renderings; None (held in memory) when no
        temporary directory can be made."""
        if self.path is None and not self._failed:
            try:
                self.path = Path(tempfile.mkdtemp(prefix="tarhold-packuments-"))
            except OSError as exc:
                self._failed = True
                LOG.warning("no temporary directory for large packuments (%s): they are held in memory", exc)
                return None
            weakref.finalize(self, shutil.rmtree, self.path, True)
        return self.path

    def release(self, rendered: Rendered) -> None:
        """`rendered` is no longer cached: its file, if any, is deleted after SPILL_GRACE."""
        if rendered.file is None:
            return
        try:
            asyncio.get_running_loop().call_later(SPILL_GRACE, _unlink, rendered.file)
        except RuntimeError:  # no loop (shutting down): now
            _unlink(rendered.file)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def revision(token: str, doc: dict[str, Any]) -> str:
    """A CouchDB-style `_rev` derived from the stored version token."""
    return f"{len(doc.get('time', {}))}-{hashlib.sha1(token.encode()).hexdigest()[:16]}"


def render_bytes(doc: dict[str, Any], token: str, base: str, variant: str, spill: Path | None = None) -> Rendered:
    """The bytes, gzip and strong ETag of one variant of a document (pure; may run in a thread);
    written to a new file in the directory `spill` when given."""
    if spill is not None:
        try:
            return _render_file(doc, token, base, variant, spill)
        except OSError as exc:  # a full or missing disk: held in memory instead
            LOG.warning("could not write a rendering to %s (%s): held in memory", spill, exc)
    out = io.BytesIO()
    write_json(doc, token, base, variant, out.write)
    # The buffer itself, cut to its length: no copy, and no slack the render cache
    # would not count (orjson's own buffers are larger than their length).
    body = out.getvalue()
    digest = hashlib.sha256(body).hexdigest()[:32]
    gzipped = gzip.compress(body, 6) if len(body) >= GZIP_MIN_BYTES else None
    return Rendered(body, f'"{digest}"', gzipped, size=len(body))


def _render_file(doc: dict[str, Any], token: str, base: str, variant: str, spill: Path) -> Rendered:
    fd, name = tempfile.mkstemp(dir=spill, suffix=".json")
    sha, size = hashlib.sha256(), 0
    packer, gzipped = zlib.compressobj(6, zlib.DEFLATED, 31), io.BytesIO()  # 31: gzip's framing

    def write(piece: bytes | memoryview) -> None:
        nonlocal size
        out.write(piece)
        sha.update(piece)
        gzipped.write(packer.compress(piece))
        size += len(piece)

    try:
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as out:
            write_json(doc, token, base, variant, write)
    except BaseException:
        os.unlink(name)
        raise
    gzipped.write(packer.flush())
    return Rendered(b"", f'"{sha.hexdigest()[:32]}"', gzipped.getvalue(), Path(name), size)


def write_json(doc: dict[str, Any], token: str, base: str, variant: str, write: Write) -> None:
    """Write `orjson.dumps` of the variant's view: tarball URLs on `base`, the mirror's mark
    dropped, and either `_rev` added (full) or the install fields only (abbreviated)."""
    base = base.rstrip("/")
    name = doc.get("name", "")
    versions = doc.get("versions") or {}
    if variant == ABBREVIATED:
        top = abbreviated_top(doc)
        manifests: Iterator[tuple[str, Any]] = (
            (version, abbreviate_manifest(rewrite_manifest(manifest, name, version, base)))
            for version, manifest in versions.items() if isinstance(manifest, dict)
        )
    else:
        top = dict(doc)
        top.pop(MIRROR_MARK, None)
        top["versions"] = {}
        top["_rev"] = revision(token, doc)
        manifests = (
            (version, rewrite_manifest(manifest, name, version, base)) for version, manifest in versions.items()
        )
    top["versions"] = orjson.Fragment(_HOLE)
    before, after = orjson.dumps(top).split(_HOLE)
    write(before)
    write(b"{")
    first = True
    while batch := dict(islice(manifests, BATCH)):
        if not first:
            write(b",")
        first = False
        write(memoryview(orjson.dumps(batch))[1:-1])
    write(b"}")
    write(after)
