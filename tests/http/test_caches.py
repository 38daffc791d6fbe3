"""The read-through caches over HTTP, on every backend: packument bytes built
once per change and served from memory within the TTL, small tarballs held in
memory, and (S3) tarballs answered with a redirect to a presigned URL."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from registry.config import parse_config
from registry.domain.packument_views import abbreviate
from registry.http.appkeys import PACKAGES
from storage.base import ConfigError, PackageStore
from tests.support.fake_upstream import FakeUpstream

from .conftest import MakeClient
from .packages import make_tarball, path_of, publish, tarball_name
from .users import add_user, bearer

ABBREVIATED = "application/vnd.npm.install-v1+json"
LONG = "a description long enough that the document is gzipped " * 30
# Enough install fields that the abbreviated document is gzipped too.
MANY_DEPENDENCIES = {f"dependency-{i}": f"^{i}.0.0" for i in range(60)}


class CountingStore:
    """Counts the storage calls one app makes, by wrapping its store's methods."""

    def __init__(self, store: PackageStore) -> None:
        self.calls: dict[str, int] = {}
        for method in ("read_packument", "packument_token", "open_tarball", "stat_tarball"):
            original = getattr(store, method)
            setattr(store, method, self._counted(method, original))

    def _counted(self, method: str, original: Any) -> Any:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[method] = self.calls.get(method, 0) + 1
            return await original(*args, **kwargs)

        return counted

    def __getitem__(self, method: str) -> int:
        return self.calls.get(method, 0)

    @property
    def packument_asked(self) -> int:
        """Packument reads, and token checks (storage asked whether a held copy still holds)."""
        return self["read_packument"] + self["packument_token"]


async def get_raw(client: TestClient, path: str, **headers: str) -> aiohttp.ClientResponse:
    """The response as sent: no decompression, and identity unless the caller asks for gzip."""
    headers = {"Accept-Encoding": "identity", **headers}
    response = await client.get(path, headers=headers, auto_decompress=False)
    await response.read()
    return response


async def set_tag(client: TestClient, token: str, name: str, tag: str, version: str) -> None:
    response = await client.put(
        f"/-/package/{path_of(name)[1:]}/dist-tags/{tag}", data=orjson.dumps(version),
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert response.status in (200, 201), await response.text()


@pytest.fixture
async def alice(client: TestClient) -> str:
    return await add_user(client, "alice")


# -- packuments ----------------------------------------------------------------


async def test_etag_changes_exactly_when_the_document_changes(
    make_client: MakeClient,
) -> None:
    # One public URL: the same document renders to the same bytes on both instances.
    client = await make_client(public_url="https://npm.example.com")
    token = await add_user(client, "alice")
    await publish(client, token, "tagged", "1.0.0", description=LONG)

    async def etags() -> tuple[str, str]:
        full = await get_raw(client, "/tagged")
        slim = await get_raw(client, "/tagged", Accept=ABBREVIATED)
        assert full.status == slim.status == 200
        return full.headers["ETag"], slim.headers["ETag"]

    first = await etags()
    assert first[0] != first[1]
    assert await etags() == first  # unchanged document: same validators
    # Another instance on the same storage renders the same bytes: same ETags.
    other = await make_client(public_url="https://npm.example.com")
    assert await etags() == first
    assert (await get_raw(other, "/tagged")).headers["ETag"] == first[0]
    not_modified = await get_raw(client, "/tagged", **{"If-None-Match": first[0]})
    assert not_modified.status == 304 and not_modified.headers["ETag"] == first[0]

    await publish(client, token, "tagged", "1.1.0", description=LONG)
    second = await etags()
    assert second[0] != first[0] and second[1] != first[1]
    assert (await get_raw(client, "/tagged", **{"If-None-Match": first[0]})).status == 200

    await set_tag(client, token, "tagged", "beta", "1.0.0")
    third = await etags()
    assert third[0] != second[0] and third[1] != second[1]
    assert await etags() == third


async def test_gzip_and_identity_bodies_decode_to_the_same_document(client: TestClient, alice: str) -> None:
    await publish(client, alice, "zipped", "1.0.0", description=LONG, dependencies=MANY_DEPENDENCIES)
    await publish(client, alice, "zipped", "1.0.1", description=LONG, dependencies=MANY_DEPENDENCIES)
    for accept in ("application/json", ABBREVIATED):
        plain = await get_raw(client, "/zipped", Accept=accept)
        zipped = await get_raw(client, "/zipped", Accept=accept, **{"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in plain.headers
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert len(await zipped.read()) < len(await plain.read())
        assert gzip.decompress(await zipped.read()) == await plain.read()
        assert orjson.loads(gzip.decompress(await zipped.read())) == orjson.loads(await plain.read())
        # One entity in two encodings: the same strong validator.
        assert zipped.headers["ETag"] == plain.headers["ETag"]


async def test_abbreviated_bytes_equal_the_abbreviation_of_the_full_document(
    client: TestClient, alice: str
) -> None:
    await publish(client, alice, "@acme/slim", "1.0.0", description=LONG, scripts={"install": "node x"})
    await publish(client, alice, "@acme/slim", "2.0.0", description=LONG, dependencies={"a": "^1"})
    full = await get_raw(client, "/@acme%2fslim")
    slim = await get_raw(client, "/@acme%2fslim", Accept=ABBREVIATED)
    assert slim.headers["Content-Type"].startswith(ABBREVIATED)
    assert await slim.read() == orjson.dumps(abbreviate(orjson.loads(await full.read())))


async def test_within_the_ttl_a_packument_get_reads_no_storage(make_client: MakeClient) -> None:
    ttl = 2.0
    client = await make_client(cache={"packument_ttl": f"{ttl}s"})
    token = await add_user(client, "alice")
    await publish(client, token, "hot", "1.0.0")
    published = time.monotonic()
    store = CountingStore(client.app[PACKAGES].store)
    for accept in ("application/json", ABBREVIATED) * 10:
        response = await client.get("/hot", headers={"Accept": accept, "Accept-Encoding": "gzip"})
        assert response.status == 200
        assert "1.0.0" in (await response.json())["versions"]
    if time.monotonic() - published < ttl:
        assert store.packument_asked == 0
    # The TTL over, storage is asked again: once for a burst.
    await asyncio.sleep(ttl)
    asked = store.packument_asked
    responses = await asyncio.gather(*(client.get("/hot") for _ in range(5)))
    assert all(r.status == 200 for r in responses)
    assert store.packument_asked == asked + 1


async def test_a_publish_on_one_instance_is_visible_on_another_within_the_ttl(
    make_client: MakeClient,
) -> None:
    ttl = 1.5
    first = await make_client(cache={"packument_ttl": f"{ttl}s"})
    second = await make_client(cache={"packument_ttl": f"{ttl}s"})
    token = await add_user(first, "alice")
    await publish(first, token, "shared", "1.0.0")
    assert set((await (await second.get("/shared")).json())["versions"]) == {"1.0.0"}
    cached_at = time.monotonic()
    await publish(first, token, "shared", "1.0.1")
    # The publishing instance serves the change at once.
    assert "1.0.1" in (await (await first.get("/shared")).json())["versions"]
    published_at = time.monotonic()
    while True:
        versions = (await (await second.get("/shared")).json())["versions"]
        if "1.0.1" in versions:
            break
        # Still the cached copy: allowed only within the TTL of the second's read.
        assert time.monotonic() - cached_at < ttl + 0.5, "the publish never became visible"
        await asyncio.sleep(0.05)
    assert time.monotonic() - published_at < ttl + 0.5


async def test_an_instance_without_a_packument_ttl_sees_every_change_at_once(make_client: MakeClient) -> None:
    first = await make_client()
    second = await make_client(cache={"packument_ttl": 0})
    token = await add_user(first, "alice")
    await publish(first, token, "eager", "1.0.0")
    assert (await second.get("/eager")).status == 200
    await publish(first, token, "eager", "1.0.1")
    assert "1.0.1" in (await (await second.get("/eager")).json())["versions"]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        fake.add_package("lodash", ["4.17.20", "4.17.21"])
        yield fake


async def test_a_fresh_mirrored_document_is_served_without_a_storage_read(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(
        uplinks={"up": {"url": upstream.url, "timeout": "5s", "maxage": "10m"}},
        packages={"**": {"access": "$all", "proxy": "up"}},
        cache={"packument_ttl": "1m"},
    )
    assert (await client.get("/lodash")).status == 200
    store = CountingStore(client.app[PACKAGES].store)
    for accept in ("application/json", ABBREVIATED) * 5:
        response = await client.get("/lodash", headers={"Accept": accept})
        assert response.status == 200
        assert set((await response.json())["versions"]) == {"4.17.20", "4.17.21"}
    assert store.packument_asked == 0
    assert upstream.count("lodash") == 1


# -- tarballs ------------------------------------------------------------------


async def test_a_small_tarball_is_served_from_memory_after_the_first_read(
    make_client: MakeClient,
) -> None:
    client = await make_client(cache={"packument_ttl": "1m"})
    token = await add_user(client, "alice")
    await publish(client, token, "tiny", "1.0.0")
    expected = make_tarball("tiny", "1.0.0")
    store = CountingStore(client.app[PACKAGES].store)
    for _ in range(5):
        response = await client.get("/tiny/-/tiny-1.0.0.tgz")
        assert response.status == 200 and await response.read() == expected
    assert store["open_tarball"] == 1 and store["stat_tarball"] == 0
    etag = response.headers["ETag"]
    again = await client.get("/tiny/-/tiny-1.0.0.tgz", headers={"If-None-Match": etag})
    assert again.status == 304
    head = await client.head("/tiny/-/tiny-1.0.0.tgz")
    assert head.status == 200 and head.headers["Content-Length"] == str(len(expected))


async def test_a_small_tarball_just_mirrored_is_held_so_the_next_read_is_from_memory(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(
        uplinks={"up": {"url": upstream.url, "timeout": "5s"}},
        packages={"**": {"access": "$all", "proxy": "up"}},
        cache={"packument_ttl": "1m"},
    )
    first = await client.get("/lodash/-/lodash-4.17.21.tgz")  # streamed from the uplink, stored
    assert first.status == 200
    body = await first.read()
    store = CountingStore(client.app[PACKAGES].store)
    for _ in range(50):  # the hold is a task of its own, done once storage gave its etag
        if client.app[PACKAGES].tarballs.get("lodash", "lodash-4.17.21.tgz") is not None:
            break
        await asyncio.sleep(0.02)
    response = await client.get("/lodash/-/lodash-4.17.21.tgz")
    assert response.status == 200 and await response.read() == body
    stat = await client.app[PACKAGES].store.stat_tarball("lodash", "lodash-4.17.21.tgz")
    assert response.headers["ETag"] == stat.etag  # the etag storage gives, as for any held tarball
    assert store["open_tarball"] == 0
    assert upstream.count("/lodash/-/lodash-4.17.21.tgz") == 1


async def test_an_unpublish_on_another_instance_drops_a_held_tarball_within_the_ttl(
    make_client: MakeClient,
) -> None:
    ttl = 1.0
    first = await make_client(cache={"packument_ttl": f"{ttl}s"})
    second = await make_client(cache={"packument_ttl": f"{ttl}s"})
    token = await add_user(first, "alice")
    await publish(first, token, "gone", "1.0.0")
    await publish(first, token, "gone", "1.0.1")
    path = "/gone/-/gone-1.0.0.tgz"
    assert (await second.get(path)).status == 200  # now held by the second instance
    assert (await first.get(path)).status == 200  # and by the first
    response = await first.get("/gone?write=true", headers=bearer(token))
    doc = await response.json()
    del doc["versions"]["1.0.0"]
    del doc["time"]["1.0.0"]
    response = await first.put(f"/gone/-rev/{doc['_rev']}", json=doc, headers=bearer(token))
    assert response.status in (200, 201), await response.text()
    # The instance that unpublished forgets it at once ...
    assert (await first.get(path)).status == 404
    # ... the other within the TTL.
    deadline = time.monotonic() + ttl + 1.0
    while (await second.get(path)).status == 200:
        assert time.monotonic() < deadline, "a deleted tarball was still served after the TTL"
        await asyncio.sleep(0.1)
    assert (await second.get("/gone/-/gone-1.0.1.tgz")).status == 200


@pytest.mark.parametrize("cache", [{"tarball_memory": 0}, {"tarball_max_size": "1kb"}])
async def test_tarballs_not_held_in_memory_are_streamed_whole(
    make_client: MakeClient, cache: dict[str, Any]
) -> None:
    client = await make_client(cache=cache)
    token = await add_user(client, "alice")
    # Random-looking content so the gzipped tarball is well over 1 KB.
    blob = "".join(f"{i * 7919 % 10007:x}" for i in range(4000))
    await publish(client, token, "bulky", "1.0.0", files={"data.txt": blob})
    expected = make_tarball("bulky", "1.0.0", files={"data.txt": blob})
    assert len(expected) > 1024
    for _ in range(2):
        response = await client.get("/bulky/-/bulky-1.0.0.tgz")
        assert response.status == 200 and await response.read() == expected
        assert response.headers["Cache-Control"].startswith("public")
    assert len(client.app[PACKAGES].tarballs) == 0
    etag = response.headers["ETag"]
    assert (await client.get("/bulky/-/bulky-1.0.0.tgz", headers={"If-None-Match": etag})).status == 304


# -- S3: redirects -------------------------------------------------------------


@pytest.fixture
def aws_section(backend: str, storage_config: dict[str, Any]) -> dict[str, Any]:
    if backend != "aws":
        pytest.skip("tarball_redirect is an option of the S3 store")
    return dict(storage_config["store"]["aws-s3-storage"])


async def test_the_redirect_mode_sends_clients_to_a_url_with_the_exact_tarball_bytes(
    make_client: MakeClient, aws_section: dict[str, Any]
) -> None:
    client = await make_client(store={"aws-s3-storage": {**aws_section, "tarball_redirect": "presigned"}})
    token = await add_user(client, "alice")
    await publish(client, token, "@acme/far", "1.0.0")
    expected = make_tarball("@acme/far", "1.0.0")
    response = await client.get("/@acme/far/-/far-1.0.0.tgz", allow_redirects=False)
    assert response.status == 307
    location = response.headers["Location"]
    assert "Signature" in location or "X-Amz-Signature" in location
    async with aiohttp.ClientSession() as session:
        async with session.get(location) as fetched:
            assert fetched.status == 200
            assert await fetched.read() == expected
    # A tarball that is not stored is not redirected.
    missing = await client.get("/@acme/far/-/far-9.9.9.tgz", allow_redirects=False)
    assert missing.status == 404


async def test_a_cdn_redirect_uses_the_stores_key_layout(
    make_client: MakeClient, aws_section: dict[str, Any]
) -> None:
    cdn = "https://cdn.example.com/npm"
    client = await make_client(store={"aws-s3-storage": {**aws_section, "tarball_redirect": cdn + "/"}})
    token = await add_user(client, "alice")
    await publish(client, token, "near", "1.0.0")
    response = await client.get(f"/near/-/{tarball_name('near', '1.0.0')}", allow_redirects=False)
    assert response.status == 307
    key = client.app[PACKAGES].store.file_key("near", "near-1.0.0.tgz")  # type: ignore[attr-defined]
    assert response.headers["Location"] == f"{cdn}/{key}"


@pytest.mark.parametrize("value", ["yes", "ftp://cdn.example.com", "https://", 7])
def test_a_bad_tarball_redirect_is_a_config_error(value: Any) -> None:
    with pytest.raises(ConfigError, match="tarball_redirect"):
        parse_config({"store": {"aws-s3-storage": {"bucket": "b", "tarball_redirect": value}}})


async def test_a_mirrored_copy_is_served_from_memory_no_longer_than_its_maxage(
    make_client: MakeClient, upstream: FakeUpstream
) -> None:
    client = await make_client(
        uplinks={"up": {"url": upstream.url, "timeout": "5s", "maxage": "0.5s"}},
        packages={"**": {"access": "$all", "proxy": "up"}},
        cache={"packument_ttl": "1m"},
    )
    for _ in range(3):
        assert (await client.get("/lodash")).status == 200
    assert upstream.count("lodash") == 1
    await asyncio.sleep(0.6)
    assert (await client.get("/lodash")).status == 200
    assert upstream.count("lodash") == 2  # revalidated: the TTL does not stretch maxage
