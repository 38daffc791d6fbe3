"""Helpers that build real-shaped npm tarballs and the bodies `npm publish` sends."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient

from .users import bearer


def make_tarball(name: str, version: str, files: dict[str, str] | None = None, **manifest: Any) -> bytes:
    """A gzipped tar as npm pack makes it: everything under `package/`."""
    package_json = {"name": name, "version": version, "description": f"{name} for tests", **manifest}
    contents = {"package.json": json.dumps(package_json, indent=2), **(files or {"index.js": "module.exports = 1;\n"})}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text in contents.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{path}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 499162500  # npm pack's fixed date
            tar.addfile(info, io.BytesIO(data))
    # mtime=0 in the gzip header: the same inputs give the same bytes.
    return gzip.compress(buffer.getvalue(), mtime=0)


def tarball_name(name: str, version: str) -> str:
    return f"{name.split('/')[-1]}-{version}.tgz"


def publish_body(
    name: str,
    version: str,
    tarball: bytes | None = None,
    *,
    tag: str = "latest",
    base: str = "http://127.0.0.1",
    **manifest: Any,
) -> dict[str, Any]:
    """The JSON `npm publish` PUTs to /{name} (libnpmpublish's shape)."""
    tarball = tarball if tarball is not None else make_tarball(name, version, **manifest)
    filename = tarball_name(name, version)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    version_manifest = {
        "name": name, "version": version, "description": f"{name} for tests",
        **manifest,
        "_id": f"{name}@{version}",
        "readme": f"# {name}\n", "_nodeVersion": "20.0.0", "_npmVersion": "11.0.0",
        "dist": {
            "integrity": integrity,
            "shasum": hashlib.sha1(tarball).hexdigest(),
            "tarball": f"{base}/{name}/-/{filename}",
        },
    }
    return {
        "_id": name, "name": name, "description": f"{name} for tests",
        "dist-tags": {tag: version},
        "versions": {version: version_manifest},
        "access": None,
        "_attachments": {
            filename: {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(tarball).decode(),
                "length": len(tarball),
            }
        },
        "readme": f"# {name}\n",
    }


def path_of(name: str) -> str:
    """The path npm uses: scoped names with an encoded slash."""
    return "/" + quote(name, safe="@")


async def publish(client: TestClient, token: str, name: str, version: str, **kwargs: Any) -> int:
    response = await client.put(path_of(name), json=publish_body(name, version, **kwargs), headers=bearer(token))
    await response.read()
    return response.status


async def packument(client: TestClient, name: str, **headers: str) -> dict[str, Any]:
    response = await client.get(path_of(name), headers=headers)
    assert response.status == 200, await response.text()
    return dict(await response.json())
