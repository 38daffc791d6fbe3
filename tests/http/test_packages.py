"""Packages over HTTP: read, publish, change, unpublish, dist-tags, search."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import os
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import PACKAGES

from .conftest import MakeClient
from .packages import make_tarball, packument, publish, publish_body, tarball_name
from .users import add_user, bearer, create_token

ABBREVIATED = "application/vnd.npm.install-v1+json"


@pytest.fixture
async def alice(client: TestClient) -> str:
    return await add_user(client, "alice")


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
    assert response.status == 404 and (await response.json())["error"]
    response = await client.get("/absent/-/absent-1.0.0.tgz")
    assert response.status == 404 and (await response.json())["error"]


@pytest.mark.parametrize(
    "path",
    ["/..%2f..%2fetc", "/UpperCase", "/" + "x" * 215, "/.hidden", "/@acme%2f..", "/a%20b"],
)
async def test_bad_package_names_get_a_4xx(client: TestClient, path: str) -> None:
    response = await client.get(path)
    assert response.status in {400, 404}, await response.text()
    assert (await response.json())["error"]


async def test_dot_dot_is_normalised_to_the_front_page(client: TestClient) -> None:
    # The URL parser turns `/%2e%2e` into `/` before routing: the web UI's
    # front page, never a package or a file outside storage.
    response = await client.get("/%2e%2e")
    assert response.status == 200
    assert response.content_type == "text/html"


async def test_publish_without_credentials_is_401(client: TestClient) -> None:
    response = await client.put("/x", json=publish_body("x", "1.0.0"))
    assert response.status == 401
    assert (await response.json())["error"]


async def test_publish_with_a_readonly_token_is_403(client: TestClient, alice: str) -> None:
    readonly = await create_token(client, alice, readonly=True)
    assert await publish(client, readonly["token"], "ro", "1.0.0") == 403


async def test_only_maintainers_may_publish_new_versions(client: TestClient, alice: str) -> None:
    bob = await add_user(client, "bob")
    assert await publish(client, alice, "owned", "1.0.0") == 201
    response = await client.put("/owned", json=publish_body("owned", "1.1.0"), headers=bearer(bob))
    assert response.status == 403
    assert "maintainer" in (await response.json())["error"]


async def test_publish_rules_name_who_may_publish(make_client: MakeClient) -> None:
    client = await make_client(packages={"@acme/*": {"access": "$authenticated", "publish": "alice"}, "**": {"access": "$all", "publish": "$authenticated"}})
    alice = await add_user(client, "alice")
    bob = await add_user(client, "bob")
    assert await publish(client, bob, "@acme/x", "1.0.0") == 403
    assert await publish(client, alice, "@acme/x", "1.0.0") == 201
    # access: $authenticated hides it from anonymous readers
    assert (await client.get("/@acme%2fx")).status == 401
    assert (await client.get("/@acme%2fx", headers=bearer(bob))).status == 200


async def test_a_version_can_never_be_published_twice(client: TestClient, alice: str) -> None:
    assert await publish(client, alice, "once", "1.0.0") == 201
    response = await client.put("/once", json=publish_body("once", "1.0.0"), headers=bearer(alice))
    assert response.status in {403, 409}
    assert "1.0.0" in (await response.json())["error"]


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b: b["_attachments"]["bad-1.0.0.tgz"].update(length=3), 422),
        (lambda b: b["versions"]["1.0.0"]["dist"].update(shasum="0" * 40), 422),
        (lambda b: b["versions"]["1.0.0"]["dist"].update(integrity="sha512-AAAA"), 422),
        (lambda b: b.update(_attachments={}), 400),
        (lambda b: b["_attachments"]["bad-1.0.0.tgz"].update(data="not base64!"), 400),
        (lambda b: b.update(name="other"), 400),
        (lambda b: b["versions"].update({"1.0.1": b["versions"]["1.0.0"]}), 400),
        (lambda b: b.update(versions={"nope": {**b["versions"]["1.0.0"], "version": "nope"}}), 400),
    ],
)
async def test_malformed_publishes_are_refused_and_store_nothing(
    client: TestClient, alice: str, mutate: Any, status: int
) -> None:
    body = publish_body("bad", "1.0.0")
    mutate(body)
    response = await client.put("/bad", json=body, headers=bearer(alice))
    assert response.status == status, await response.text()
    assert (await response.json())["error"]
    assert (await client.get("/bad")).status == 404
    assert (await client.get("/bad/-/bad-1.0.0.tgz")).status == 404


async def test_tarball_whose_package_json_disagrees_is_422(client: TestClient, alice: str) -> None:
    body = publish_body("liar", "1.0.0", tarball=make_tarball("someone-else", "1.0.0"))
    response = await client.put("/liar", json=body, headers=bearer(alice))
    assert response.status == 422


async def test_invalid_json_and_huge_bodies_get_4xx(make_client: MakeClient) -> None:
    client = await make_client(max_body_size="64kb")
    token = await add_user(client, "alice")
    response = await client.put("/j", data=b"{not json", headers={**bearer(token), "Content-Type": "application/json"})
    assert response.status == 400
    big = make_tarball("big", "1.0.0", files={"blob.txt": base64.b64encode(os.urandom(100_000)).decode()})
    response = await client.put("/big", json=publish_body("big", "1.0.0", tarball=big), headers=bearer(token))
    assert response.status == 413
    assert "max_body_size" in (await response.json())["error"]
    assert (await client.get("/-/ping")).status == 200


async def test_deprecate_through_the_rev_flow(client: TestClient, alice: str) -> None:
    await publish(client, alice, "old", "1.0.0")
    doc = await (await client.get("/old?write=true", headers=bearer(alice))).json()
    doc["versions"]["1.0.0"]["deprecated"] = "use new instead"
    response = await client.put(f"/old/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 201, await response.text()
    assert (await packument(client, "old"))["versions"]["1.0.0"]["deprecated"] == "use new instead"


async def test_rev_flow_cannot_inject_a_version_or_change_a_tarball(client: TestClient, alice: str) -> None:
    await publish(client, alice, "safe", "1.0.0")
    doc = await (await client.get("/safe?write=true", headers=bearer(alice))).json()
    doc["versions"]["1.0.0"]["dist"]["tarball"] = "http://127.0.0.1:9/evil.tgz"
    response = await client.put(f"/safe/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 400
    doc = await (await client.get("/safe?write=true", headers=bearer(alice))).json()
    doc["versions"]["2.0.0"] = {**doc["versions"]["1.0.0"], "version": "2.0.0"}
    response = await client.put(f"/safe/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 400


async def test_unpublish_one_version_then_its_tarball(client: TestClient, alice: str) -> None:
    await publish(client, alice, "u", "1.0.0")
    await publish(client, alice, "u", "1.1.0")
    doc = await (await client.get("/u?write=true", headers=bearer(alice))).json()
    del doc["versions"]["1.1.0"]
    doc["dist-tags"]["latest"] = "1.0.0"
    response = await client.put(f"/u/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 201, await response.text()
    doc = await (await client.get("/u?write=true", headers=bearer(alice))).json()
    response = await client.delete(f"/u/-/u-1.1.0.tgz/-rev/{doc['_rev']}", headers=bearer(alice))
    assert response.status in {200, 404}
    doc = await packument(client, "u")
    assert list(doc["versions"]) == ["1.0.0"] and doc["dist-tags"]["latest"] == "1.0.0"
    assert (await client.get("/u/-/u-1.1.0.tgz")).status == 404
    # the removed version can never come back
    assert await publish(client, alice, "u", "1.1.0") in {403, 409}


async def test_unpublish_whole_package_leaves_nothing_servable(client: TestClient, alice: str) -> None:
    await publish(client, alice, "gone", "1.0.0")
    doc = await (await client.get("/gone?write=true", headers=bearer(alice))).json()
    response = await client.delete(f"/gone/-rev/{doc['_rev']}", headers=bearer(alice))
    assert response.status == 200, await response.text()
    assert (await client.get("/gone")).status == 404
    assert (await client.get("/gone/-/gone-1.0.0.tgz")).status == 404
    assert await publish(client, alice, "gone", "1.0.0") in {403, 409}
    assert await publish(client, alice, "gone", "2.0.0") == 201


async def test_unpublish_needs_a_maintainer(client: TestClient, alice: str) -> None:
    bob = await add_user(client, "bob")
    await publish(client, alice, "mine", "1.0.0")
    doc = await (await client.get("/mine?write=true", headers=bearer(bob))).json()
    response = await client.delete(f"/mine/-rev/{doc['_rev']}", headers=bearer(bob))
    assert response.status == 403


async def test_owner_add_lets_the_new_owner_publish(client: TestClient, alice: str) -> None:
    bob = await add_user(client, "bob")
    await publish(client, alice, "shared", "1.0.0")
    doc = await (await client.get("/shared?write=true", headers=bearer(alice))).json()
    doc["maintainers"].append({"name": "bob", "email": "bob@example.com"})
    response = await client.put(f"/shared/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 201, await response.text()
    assert await publish(client, bob, "shared", "1.1.0") == 201


async def test_dist_tags_endpoints(client: TestClient, alice: str) -> None:
    await publish(client, alice, "t", "1.0.0")
    await publish(client, alice, "t", "2.0.0-rc.1", tag="next")
    assert await (await client.get("/-/package/t/dist-tags")).json() == {"latest": "1.0.0", "next": "2.0.0-rc.1"}
    response = await client.put("/-/package/t/dist-tags/beta", json="2.0.0-rc.1", headers=bearer(alice))
    assert response.status == 201, await response.text()
    response = await client.delete("/-/package/t/dist-tags/next", headers=bearer(alice))
    assert response.status == 200
    assert await (await client.get("/-/package/t/dist-tags")).json() == {"latest": "1.0.0", "beta": "2.0.0-rc.1"}
    response = await client.put("/-/package/t/dist-tags/nightly", json="9.9.9", headers=bearer(alice))
    assert response.status == 404
    response = await client.put("/-/package/t/dist-tags/1.0.0", json="1.0.0", headers=bearer(alice))
    assert response.status == 400
    response = await client.delete("/-/package/t/dist-tags/latest", headers=bearer(alice))
    assert response.status == 400
    response = await client.put("/-/package/t/dist-tags/anon", json="1.0.0")
    assert response.status == 401
    # legacy form
    response = await client.put("/t/stable", json="1.0.0", headers=bearer(alice))
    assert response.status == 201
    assert (await client.get("/-/package/@acme%2fnone/dist-tags")).status == 404


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


async def test_concurrent_publishes_of_different_versions_all_land(make_client: MakeClient) -> None:
    # A second instance on the same storage; no packument cache, so each
    # instance sees the other's last write at once.
    first = await make_client(cache={"packument_ttl": 0})
    second = await make_client(cache={"packument_ttl": 0})
    token = await add_user(first, "alice")
    await publish(first, token, "busy", "0.0.1")

    async def one(i: int) -> int:
        client = first if i % 2 else second
        return await publish(client, token, "busy", f"1.0.{i}")

    statuses = await asyncio.gather(*(one(i) for i in range(16)))
    assert statuses == [201] * 16
    # the retry path really ran: some writes lost the race and were re-applied
    assert first.app[PACKAGES].conflicts + second.app[PACKAGES].conflicts > 0
    doc = await packument(first, "busy")
    assert set(doc["versions"]) == {"0.0.1"} | {f"1.0.{i}" for i in range(16)}
    for i in range(16):
        response = await second.get(f"/busy/-/{tarball_name('busy', f'1.0.{i}')}")
        assert response.status == 200
        assert await response.read() == make_tarball("busy", f"1.0.{i}")


async def test_unknown_dash_paths_are_404_not_400(client: TestClient) -> None:
    response = await client.get("/-/no-such-endpoint")
    assert response.status == 404


async def test_star_touches_only_the_starring_users_entry(client: TestClient, alice: str) -> None:
    bob = await add_user(client, "bob")
    await publish(client, alice, "s", "1.0.0")
    doc = await (await client.get("/s?write=true", headers=bearer(alice))).json()
    response = await client.put("/s", json={"_id": "s", "_rev": doc["_rev"], "users": {"alice": True}}, headers=bearer(alice))
    assert response.status == 201, await response.text()
    # bob is no maintainer; he may star, and his body cannot drop alice's star
    response = await client.put("/s", json={"_id": "s", "_rev": doc["_rev"], "users": {"bob": True}}, headers=bearer(bob))
    assert response.status == 201, await response.text()
    assert (await packument(client, "s"))["users"] == {"alice": True, "bob": True}
    response = await client.put("/s", json={"_id": "s", "users": {}}, headers=bearer(bob))
    assert response.status == 201
    assert (await packument(client, "s"))["users"] == {"alice": True}


async def test_owner_change_alone_needs_publish_rights_not_unpublish(make_client: MakeClient) -> None:
    client = await make_client(packages={"**": {"access": "$all", "publish": "$authenticated", "unpublish": "nobody"}})
    alice = await add_user(client, "alice")
    await add_user(client, "bob")
    await publish(client, alice, "o", "1.0.0")
    doc = await (await client.get("/o?write=true", headers=bearer(alice))).json()
    body = {"_id": "o", "_rev": doc["_rev"], "maintainers": [*doc["maintainers"], {"name": "bob", "email": "b@example.com"}]}
    response = await client.put(f"/o/-rev/{doc['_rev']}", json=body, headers=bearer(alice))
    assert response.status == 201, await response.text()
    assert [m["name"] for m in (await packument(client, "o"))["maintainers"]] == ["alice", "bob"]


async def test_legacy_names_are_readable_but_not_publishable(client: TestClient, alice: str) -> None:
    assert (await client.get("/JSONStream")).status == 404  # readable name, just absent
    response = await client.put("/JSONStream", json=publish_body("JSONStream", "1.0.0"), headers=bearer(alice))
    assert response.status == 400
