"""A compression bomb shaped like an npm tarball, built without holding its inflated bytes."""

from __future__ import annotations

import json
import tarfile
import zlib

MANIFEST = json.dumps({"name": "bomb", "version": "1.0.0"}).encode()


def zero_file_bomb(inflated: int) -> bytes:
    """A gzipped tar with a valid package/package.json and one file of `inflated` zero bytes.

    Written through zlib in pieces, so the test never holds the inflated bytes.
    """
    manifest = tarfile.TarInfo("package/package.json")
    manifest.size = len(MANIFEST)
    header = manifest.tobuf() + MANIFEST + bytes(-len(MANIFEST) % tarfile.BLOCKSIZE)
    big = tarfile.TarInfo("package/zeros.bin")
    big.size = inflated
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(header + big.tobuf())]
    block = bytes(1024 * 1024)
    for _ in range(inflated // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(bytes(1024 * 2)))  # end of archive
    parts.append(compressor.flush())
    return b"".join(parts)
