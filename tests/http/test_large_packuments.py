"""A packument over 4 MB through the mirror, on every backend: parsed from text, its
variants rendered into files and served from them, byte for byte what a small one's
would be (full, abbreviated, gzip, HEAD, 304, one version's manifest)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Mapping

import orjson
import pytest
from aiohttp.test_utils import TestClient

from registry.domain.packument_views import abbreviate
from registry.http.appkeys import PACKAGES
from tests.support.fake_upstream import FakeUpstream

from .conftest import MakeClient

ABBREVIATED = "application/vnd.npm.install-v1+json"
VERSIONS = 3000  # about 5.4 MB of JSON


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        fake.add_large_packument("huge", versions=VERSIONS)
        yield fake


@pytest.fixture
async def client(make_client: MakeClient, upstream: FakeUpstream) -> TestClient:
    return await make_client(
        uplinks={"up": {"url": upstream.url, "timeout": "30s", "maxage": "10m"}},
        packages={"**": {"access": "$all", "proxy": "up"}},
    )


async def raw(client: TestClient, method: str = "GET", **headers: str) -> tuple[int, Mapping[str, str], bytes]:
    """The response as sent: no decompression, and identity unless gzip is asked for."""
    response = await client.request(
        method, "/huge", headers={"Accept-Encoding": "identity", **headers}, auto_decompress=False
    )
    return response.status, response.headers, await response.read()


async def test_every_variant_of_a_large_packument_is_served_from_files(client: TestClient) -> None:
    status, headers, full = await raw(client, Accept="application/json")
    assert status == 200 and headers["Content-Length"] == str(len(full)) > str(4 * 1024 * 1024)
    doc = orjson.loads(full)
    assert len(doc["versions"]) == VERSIONS and "_tarhold" not in doc and doc["_rev"]
    base = str(client.make_url("")).rstrip("/")
    assert all(m["dist"]["tarball"].startswith(f"{base}/huge/-/") for m in doc["versions"].values())
    spill = client.app[PACKAGES].spill.path
    assert spill is not None and len(list(spill.iterdir())) == 1

    status, headers, slim = await raw(client, Accept=ABBREVIATED)
    assert status == 200 and slim == orjson.dumps(abbreviate(doc))
    assert len(list(spill.iterdir())) == 2
    status, headers, packed = await raw(client, Accept=ABBREVIATED, **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(packed) == slim
    status, headers, packed = await raw(client, Accept="application/json", **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(packed) == full

    status, headers, nothing = await raw(client, "HEAD", Accept="application/json")
    assert status == 200 and nothing == b"" and headers["Content-Length"] == str(len(full)), headers
    etag = headers.get("ETag") or headers.get("Etag"); assert etag, headers
    status, headers, nothing = await raw(client, Accept="application/json", **{"If-None-Match": etag})
    assert status == 304 and nothing == b"" and headers["ETag"] == etag


async def test_one_version_of_a_large_packument_is_its_manifest_as_the_document_has_it(
    client: TestClient,
) -> None:
    doc = orjson.loads((await raw(client))[2])
    latest = doc["dist-tags"]["latest"]
    for spec in (latest, "latest", f"v{latest}"):
        response = await client.get(f"/huge/{spec}")
        assert response.status == 200 and await response.json() == doc["versions"][latest], spec
    assert (await client.get("/huge/99.99.99")).status == 404
