"""A tarball is served only when its version is in the packument (issue 15, item 4), on every backend.

A publish that dies between writing its tarball and its packument leaves a
file no packument lists; such an orphan is never served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp.test_utils import TestClient

from registry.http.appkeys import STORE

from .packages import make_tarball, path_of, publish


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_an_orphan_of_a_package_that_has_other_versions_is_not_served(client: TestClient, alice: str) -> None:
    assert await publish(client, alice, "orphaned", "1.0.0") == 201
    # What a publish of 1.1.0 leaves when its process dies before the packument write:
    await client.app[STORE].write_tarball("orphaned", "orphaned-1.1.0.tgz", chunks(make_tarball("orphaned", "1.1.0")))
    assert (await client.get(f"{path_of('orphaned')}/-/orphaned-1.1.0.tgz")).status == 404
    assert (await client.get(f"{path_of('orphaned')}/-/orphaned-1.0.0.tgz")).status == 200
    assert await publish(client, alice, "orphaned", "1.1.0") == 201  # the version can still be published
    assert (await client.get(f"{path_of('orphaned')}/-/orphaned-1.1.0.tgz")).status == 200


async def test_an_orphan_without_any_packument_is_not_served(client: TestClient) -> None:
    await client.app[STORE].write_tarball("never", "never-1.0.0.tgz", chunks(make_tarball("never", "1.0.0")))
    assert (await client.get("/never/-/never-1.0.0.tgz")).status == 404


async def test_a_scoped_orphan_is_not_served(client: TestClient, alice: str) -> None:
    assert await publish(client, alice, "@acme/thing", "1.0.0") == 201
    await client.app[STORE].write_tarball("@acme/thing", "thing-2.0.0.tgz", chunks(make_tarball("@acme/thing", "2.0.0")))
    assert (await client.get(f"{path_of('@acme/thing')}/-/thing-2.0.0.tgz")).status == 404
    assert (await client.get(f"{path_of('@acme/thing')}/-/thing-1.0.0.tgz")).status == 200
