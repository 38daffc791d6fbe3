"""Packages over HTTP, read: documents and tarballs in every spelling and
form (abbreviated, ETag, gzip, manifests), missing and bad names, search.
"""

from __future__ import annotations

import base64
import gzip
import hashlib

import pytest
from aiohttp.test_utils import TestClient

from .conftest import MakeClient
from .packages import make_tarball, packument, publish, publish_body
from .users import add_user, bearer

ABBREVIATED = "application/vnd.npm.install-v1+json"


async def test_published_package_is_served_with_tarball_urls_on_this_registry(
    client: TestClient, alice: str
) -> None:
    assert await publish(client, alice, "left-pad", "1.0.0") == 201
    doc = await packument(client, "left-pad")
    assert doc["dist-tags"] == {"latest": "1.0.0"}
    dist = doc["versions"]["1.0.0"]["dist"]
    assert dist["tarball"] == f"http://{client.host}:{client.port}/left-pad/-/left-pad-1.0.0.tgz"
    assert doc["maintainers"] == [{"name": "alice", "email": "alice@example.com"}] or doc["maintainers"][0]["name"] == "alice"
    assert doc["time"]["1.0.0"] and doc["time"]["created"] and doc["_rev"]
    assert "_attachments" not in doc
    tarball = await client.get("/left-pad/-/left-pad-1.0.0.tgz")
    assert tarball.status == 200
    data = await tarball.read()
    assert data == make_tarball("left-pad", "1.0.0")
    assert tarball.headers["Content-Length"] == str(len(data))
    assert tarball.headers["ETag"]
    assert dist["shasum"] == hashlib.sha1(data).hexdigest()
    assert dist["integrity"] == "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    assert dist["fileCount"] == 2 and dist["unpackedSize"] > 0


async def test_public_url_and_forwarded_headers_shape_tarball_urls(make_client: MakeClient) -> None:
    client = await make_client(public_url="https://npm.example.com/reg")
    token = await add_user(client, "alice")
    await publish(client, token, "a", "1.0.0")
    doc = await packument(client, "a")
    assert doc["versions"]["1.0.0"]["dist"]["tarball"] == "https://npm.example.com/reg/a/-/a-1.0.0.tgz"
    other = await make_client()
    doc = await packument(other, "a", **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "lb.example.com"})
    assert doc["versions"]["1.0.0"]["dist"]["tarball"] == "https://lb.example.com/a/-/a-1.0.0.tgz"


@pytest.mark.parametrize("spelling", ["/@acme%2fui", "/@acme%2Fui", "/@acme/ui"])
async def test_scoped_package_is_reachable_in_every_spelling(
    client: TestClient, alice: str, spelling: str
) -> None:
    assert await publish(client, alice, "@acme/ui", "2.0.0") == 201
    response = await client.get(spelling)
    assert response.status == 200
    doc = await response.json()
    assert doc["versions"]["2.0.0"]["dist"]["tarball"].endswith("/@acme/ui/-/ui-2.0.0.tgz")
    tarball = await client.get(spelling + "/-/ui-2.0.0.tgz")
    assert tarball.status == 200 and await tarball.read() == make_tarball("@acme/ui", "2.0.0")


async def test_abbreviated_document_keeps_install_fields_and_drops_readme(
    client: TestClient, alice: str
) -> None:
    await publish(
        client, alice, "tool", "1.0.0",
        bin={"tool": "cli.js"}, engines={"node": ">=18"}, os=["linux"], cpu=["x64"],
        scripts={"postinstall": "node x.js", "test": "true"}, keywords=["k"],
    )
    response = await client.get("/tool", headers={"Accept": ABBREVIATED})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith(ABBREVIATED)
    doc = await response.json()
    assert set(doc) >= {"name", "dist-tags", "versions", "modified"}
    assert "readme" not in doc and "time" in doc
    manifest = doc["versions"]["1.0.0"]
    assert manifest["bin"] == {"tool": "cli.js"} and manifest["engines"] == {"node": ">=18"}
    assert manifest["os"] == ["linux"] and manifest["cpu"] == ["x64"]
    assert manifest["hasInstallScript"] is True
    assert "scripts" not in manifest and "keywords" not in manifest and "readme" not in manifest


async def test_etag_gives_304_and_changes_when_the_document_changes(
    client: TestClient, alice: str
) -> None:
    await publish(client, alice, "e", "1.0.0")
    first = await client.get("/e")
    etag = first.headers["ETag"]
    again = await client.get("/e", headers={"If-None-Match": etag})
    assert again.status == 304
    await publish(client, alice, "e", "1.1.0")
    changed = await client.get("/e", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


async def test_gzip_and_identity_bodies_are_the_same_document(client: TestClient, alice: str) -> None:
    await publish(client, alice, "z", "1.0.0", description="a long description " * 200)
    plain = await client.get("/z", headers={"Accept-Encoding": "identity"})
    plain_body = await plain.read()
    raw = await client.get("/z", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert raw.headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(await raw.read()) == plain_body


async def test_version_and_tag_manifests(client: TestClient, alice: str) -> None:
    await publish(client, alice, "m", "1.0.0")
    await publish(client, alice, "m", "1.1.0-beta.1", tag="next")
    assert (await (await client.get("/m/1.0.0")).json())["version"] == "1.0.0"
    assert (await (await client.get("/m/latest")).json())["version"] == "1.0.0"
    assert (await (await client.get("/m/next")).json())["version"] == "1.1.0-beta.1"
    missing = await client.get("/m/9.9.9")
    assert missing.status == 404 and "not found" in (await missing.json())["error"]


async def test_missing_package_and_tarball_are_404_with_a_message(client: TestClient) -> None:
    response = await client.get("/absent")
    assert response.status == 404
    # No uplink: the message says that nothing else was asked.
    assert (await response.json())["error"] == "package absent not found: not published here, and no uplink is configured"
    response = await client.get("/absent/1.0.0")
    assert (await response.json())["error"] == "package absent not found: not published here, and no uplink is configured"
    response = await client.get("/absent/-/absent-1.0.0.tgz")
    assert response.status == 404 and (await response.json())["error"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/..%2f..%2fetc", 400),
        # Upper case is refused only for new packages: old npm names had it,
        # so reading one is a lookup that finds nothing.
        ("/UpperCase", 404),
        ("/" + "x" * 215, 400),
        ("/.hidden", 400),
        ("/@acme%2f..", 400),
        ("/a%20b", 400),
    ],
)
async def test_bad_package_names_get_a_4xx(client: TestClient, path: str, status: int) -> None:
    response = await client.get(path)
    assert response.status == status, await response.text()
    assert (await response.json())["error"]


async def test_dot_dot_is_normalised_to_the_front_page(client: TestClient) -> None:
    # The URL parser turns `/%2e%2e` into `/` before routing: the web UI's
    # front page, never a package or a file outside storage.
    response = await client.get("/%2e%2e")
    assert response.status == 200
    assert response.content_type == "text/html"


async def test_search_finds_local_packages_in_npms_shape(client: TestClient, alice: str) -> None:
    await publish(client, alice, "alpha-widget", "1.0.0", keywords=["widget"])
    await publish(client, alice, "@acme/widget", "1.0.0")
    await publish(client, alice, "unrelated", "1.0.0")
    body = await (await client.get("/-/v1/search", params={"text": "widget", "size": "10"})).json()
    names = [o["package"]["name"] for o in body["objects"]]
    assert names[0] == "@acme/widget" and set(names) == {"@acme/widget", "alpha-widget"}
    assert body["total"] == 2
    first = body["objects"][0]
    assert first["package"]["version"] == "1.0.0" and "score" in first and "searchScore" in first
    page = await (await client.get("/-/v1/search", params={"text": "widget", "size": "1", "from": "1"})).json()
    assert [o["package"]["name"] for o in page["objects"]] == ["alpha-widget"]
    bad = await client.get("/-/v1/search", params={"size": "many"})
    assert bad.status == 400


async def test_unknown_dash_paths_are_404_not_400(client: TestClient) -> None:
    response = await client.get("/-/no-such-endpoint")
    assert response.status == 404


async def test_legacy_names_are_readable_but_not_publishable(client: TestClient, alice: str) -> None:
    assert (await client.get("/JSONStream")).status == 404  # readable name, just absent
    response = await client.put("/JSONStream", json=publish_body("JSONStream", "1.0.0"), headers=bearer(alice))
    assert response.status == 400
