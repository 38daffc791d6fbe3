"""Publishing a hostile tarball is refused, and nothing of it is stored (issue 14, items 2 and 10)."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile

from aiohttp.test_utils import TestClient

from tests.support.bombs import zero_file_bomb

from .conftest import MakeClient
from .packages import path_of, publish_body
from .users import PASSWORD, add_user, basic, bearer


def tarball_with(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue())


def manifest(name: str, version: str = "1.0.0") -> bytes:
    return json.dumps({"name": name, "version": version}).encode()


async def put(client: TestClient, token: str, name: str, tarball: bytes) -> tuple[int, str]:
    response = await client.put(path_of(name), json=publish_body(name, "1.0.0", tarball=tarball),
                                headers=bearer(token))
    return response.status, str((await response.json()).get("error", ""))


async def assert_not_stored(client: TestClient, name: str) -> None:
    response = await client.get(path_of(name))
    assert response.status == 404
    tarball = await client.get(f"{path_of(name)}/-/{name}-1.0.0.tgz")
    assert tarball.status == 404


async def test_a_compression_bomb_is_refused_and_not_stored(client: TestClient, alice: str) -> None:
    # 256 MiB of zeros in about 255 KB, behind a valid package/package.json.
    status, error = await put(client, alice, "bomb", zero_file_bomb(256 * 1024 * 1024))
    assert status == 422
    assert "inflates more than 100 times" in error
    await assert_not_stored(client, "bomb")


async def test_a_tarball_past_max_unpacked_size_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_unpacked_size="100kb")
    token = await add_user(client, "alice")
    noise = bytes(range(256)) * 800  # 200 KB that do not compress much
    status, error = await put(client, token, "roomy", tarball_with({
        "package/package.json": manifest("roomy"), "package/blob.bin": noise,
    }))
    assert status == 413
    assert "max_unpacked_size" in error
    await assert_not_stored(client, "roomy")


async def test_bombs_in_flight_do_not_hold_up_logins(client: TestClient, alice: str) -> None:
    bomb = zero_file_bomb(64 * 1024 * 1024)
    publishes = [put(client, alice, f"bomb-{i}", bomb) for i in range(6)]
    login = client.get("/-/whoami", headers=basic("alice", PASSWORD))
    *refused, whoami = await asyncio.gather(*publishes, login)
    assert [status for status, _ in refused] == [422] * 6
    assert whoami.status == 200


async def test_a_manifest_outside_the_package_folder_is_refused(client: TestClient, alice: str) -> None:
    status, error = await put(client, alice, "escape", tarball_with({"../package.json": manifest("escape")}))
    assert status == 422
    assert "outside its package folder" in error
    await assert_not_stored(client, "escape")


async def test_a_link_out_of_the_package_folder_is_refused(client: TestClient, alice: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = manifest("linky")
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("package/secret")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    status, error = await put(client, alice, "linky", gzip.compress(buffer.getvalue()))
    assert status == 422
    assert "link out of its package folder" in error
    await assert_not_stored(client, "linky")
