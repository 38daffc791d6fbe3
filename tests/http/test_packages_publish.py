"""Packages over HTTP, written: publish and who may, malformed publishes,
deprecate, unpublish, owners, dist-tags, stars, concurrent publishes.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import PACKAGES

from .conftest import MakeClient
from .packages import make_tarball, packument, publish, publish_body, tarball_name
from .users import add_user, bearer, create_token

ABBREVIATED = "application/vnd.npm.install-v1+json"


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
    assert response.status == 403
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
    # The PUT that dropped 1.1.0 already deleted its tarball: npm's DELETE finds nothing.
    assert response.status == 404
    doc = await packument(client, "u")
    assert list(doc["versions"]) == ["1.0.0"] and doc["dist-tags"]["latest"] == "1.0.0"
    assert (await client.get("/u/-/u-1.1.0.tgz")).status == 404
    # the removed version can never come back
    assert await publish(client, alice, "u", "1.1.0") == 403


async def test_unpublish_whole_package_leaves_nothing_servable(client: TestClient, alice: str) -> None:
    await publish(client, alice, "gone", "1.0.0")
    doc = await (await client.get("/gone?write=true", headers=bearer(alice))).json()
    response = await client.delete(f"/gone/-rev/{doc['_rev']}", headers=bearer(alice))
    assert response.status == 200, await response.text()
    assert (await client.get("/gone")).status == 404
    assert (await client.get("/gone/-/gone-1.0.0.tgz")).status == 404
    assert await publish(client, alice, "gone", "1.0.0") == 403
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

    # Rounds of 16 until some writes lost the race and were re-applied (the retry path
    # really ran); whether one round collides depends on the scheduler, so up to 5.
    published = 0
    for _ in range(5):
        statuses = await asyncio.gather(*(one(i) for i in range(published, published + 16)))
        assert statuses == [201] * 16
        published += 16
        if first.app[PACKAGES].conflicts + second.app[PACKAGES].conflicts > 0:
            break
    assert first.app[PACKAGES].conflicts + second.app[PACKAGES].conflicts > 0
    doc = await packument(first, "busy")
    assert set(doc["versions"]) == {"0.0.1"} | {f"1.0.{i}" for i in range(published)}
    for i in range(published):
        response = await second.get(f"/busy/-/{tarball_name('busy', f'1.0.{i}')}")
        assert response.status == 200
        assert await response.read() == make_tarball("busy", f"1.0.{i}")


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
