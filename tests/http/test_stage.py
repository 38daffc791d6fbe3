"""Staged publishing over HTTP (`npm stage`), on every backend: a staged version is invisible
until a maintainer approves it, holds its number meanwhile, and is gone once rejected."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import PACKAGES

from .conftest import MakeClient
from .packages import (
    make_tarball,
    packument,
    path_of,
    publish,
    publish_body,
    tarball_name,
)
from .users import add_user, bearer

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NOT_FOUND = "Not Found - No staged package version found with the provided ID."
NO_SUCH_STAGE = "7b0c1f5e-3d4a-4c2b-9e8f-0a1b2c3d4e5f"


async def stage(client: TestClient, token: str, name: str, version: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """`npm stage publish`: libnpmpublish POSTs the publish body to /-/stage/package/{escapedName}."""
    response = await client.post(
        "/-/stage/package" + path_of(name), json=publish_body(name, version, **kwargs), headers=bearer(token)
    )
    return response.status, dict(await response.json())


async def staged(client: TestClient, token: str, name: str, version: str, **kwargs: Any) -> str:
    status, body = await stage(client, token, name, version, **kwargs)
    assert status == 201, body
    assert body["message"] == "Package version staged successfully." and UUID.fullmatch(body["stageId"])
    return str(body["stageId"])


async def approve(client: TestClient, token: str, stage_id: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(f"/-/stage/{stage_id}/approve", headers=bearer(token))
    return response.status, dict(await response.json())


async def listing(client: TestClient, token: str, **query: str) -> dict[str, Any]:
    response = await client.get("/-/stage", params=query, headers=bearer(token))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def owners(client: TestClient, token: str, name: str, names: list[str]) -> None:
    """`npm owner add|rm`: the packument PUT back with the new maintainers."""
    doc = await (await client.get(f"{path_of(name)}?write=true", headers=bearer(token))).json()
    body = {"_id": name, "_rev": doc["_rev"], "maintainers": [{"name": n, "email": f"{n}@example.com"} for n in names]}
    response = await client.put(f"{path_of(name)}/-rev/{doc['_rev']}", json=body, headers=bearer(token))
    assert response.status == 201, await response.text()


async def test_a_staged_version_stays_invisible_until_a_maintainer_approves_it(client: TestClient, alice: str) -> None:
    bob = await add_user(client, "bob")
    await publish(client, alice, "widget", "1.0.0")
    tarball = make_tarball("widget", "1.1.0")
    stage_id = await staged(client, alice, "widget", "1.1.0", tarball=tarball, tag="next")

    doc = await packument(client, "widget")
    assert "1.1.0" not in doc["versions"] and "1.1.0" not in doc["time"] and "next" not in doc["dist-tags"]
    assert (await client.get(f"/widget/-/{tarball_name('widget', '1.1.0')}")).status == 404
    assert (await client.get("/widget/1.1.0")).status == 404
    found = await (await client.get("/-/v1/search", params={"text": "widget"})).json()
    assert [o["package"]["version"] for o in found["objects"]] == ["1.0.0"]

    item = (await listing(client, alice))["items"][0]
    assert item["id"] == stage_id and item["packageName"] == "widget" and item["version"] == "1.1.0"
    assert item["tag"] == "next" and item["actor"] == "alice" and item["actorType"] == "user"
    view = await client.get(f"/-/stage/{stage_id}", headers=bearer(alice))
    assert view.status == 200 and await view.json() == item
    download = await client.get(f"/-/stage/{stage_id}/tarball", headers=bearer(alice))
    assert download.status == 200 and await download.read() == tarball

    # Whoever neither maintains the package nor staged it learns nothing, not even that the id exists.
    assert await listing(client, bob) == {"items": [], "page": 0, "perPage": 10, "total": 0}
    for path in (f"/-/stage/{stage_id}", f"/-/stage/{stage_id}/tarball"):
        response = await client.get(path, headers=bearer(bob))
        assert (response.status, await response.json()) == (404, {"error": NOT_FOUND})
    assert (await approve(client, bob, stage_id))[0] == 404
    assert (await client.get(f"/-/stage/{stage_id}")).status == 401

    assert await approve(client, alice, stage_id) == (201, {"message": "Package version approved and published successfully."})
    doc = await packument(client, "widget")
    assert doc["dist-tags"] == {"latest": "1.0.0", "next": "1.1.0"}
    manifest = doc["versions"]["1.1.0"]
    assert manifest["_npmUser"]["name"] == "alice"
    assert manifest["_stage"]["id"] == stage_id and manifest["_stage"]["stagedBy"] == "alice"
    assert manifest["_stage"]["approvedBy"] == "alice" and manifest["_stage"]["stagedAt"] == item["createdAt"]
    assert manifest["dist"]["shasum"] == item["shasum"] and manifest["dist"]["tarball"].endswith("/widget/-/widget-1.1.0.tgz")
    got = await client.get(f"/widget/-/{tarball_name('widget', '1.1.0')}")
    assert got.status == 200 and await got.read() == tarball
    assert (await client.get(f"/-/stage/{stage_id}", headers=bearer(alice))).status == 404
    assert (await listing(client, alice))["total"] == 0
    assert set(await client.app[PACKAGES].store.list_files("widget")) == {
        "package.json", "widget-1.0.0.tgz", "widget-1.1.0.tgz"}


async def test_rejecting_deletes_the_stage_and_its_tarball_and_frees_the_number(client: TestClient, alice: str) -> None:
    await publish(client, alice, "gadget", "1.0.0")
    stage_id = await staged(client, alice, "gadget", "2.0.0")
    assert len(await client.app[PACKAGES].store.list_files("gadget")) == 3  # packument, 1.0.0, the staged file
    response = await client.delete(f"/-/stage/{stage_id}", headers=bearer(alice))
    assert response.status == 204
    assert (await client.get(f"/-/stage/{stage_id}", headers=bearer(alice))).status == 404
    assert (await client.delete(f"/-/stage/{stage_id}", headers=bearer(alice))).status == 404
    assert (await approve(client, alice, stage_id))[0] == 404
    assert set(await client.app[PACKAGES].store.list_files("gadget")) == {"package.json", "gadget-1.0.0.tgz"}
    assert (await listing(client, alice))["total"] == 0
    assert await publish(client, alice, "gadget", "2.0.0") == 201


async def test_a_staged_number_is_held_against_publishes_and_other_stages(client: TestClient, alice: str) -> None:
    await publish(client, alice, "held", "1.0.0")
    stage_id = await staged(client, alice, "held", "1.1.0")
    response = await client.put("/held", json=publish_body("held", "1.1.0"), headers=bearer(alice))
    assert response.status == 409
    assert (await response.json())["error"] == (
        f"version 1.1.0 of held is staged (id {stage_id}): approve or reject it with npm stage")
    assert (await client.put("/held", json=publish_body("held", "1.1.0+build.7"), headers=bearer(alice))).status == 409
    status, body = await stage(client, alice, "held", "1.1.0")
    assert status == 409 and stage_id in body["error"]
    status, body = await stage(client, alice, "held", "1.0.0")
    assert status == 409 and "already published" in body["error"]
    assert (await listing(client, alice))["total"] == 1
    assert await publish(client, alice, "held", "1.2.0") == 201  # other numbers are free


async def test_staging_needs_what_publishing_needs(client: TestClient, alice: str) -> None:
    bob = await add_user(client, "bob")
    await publish(client, alice, "mine", "1.0.0")
    status, body = await stage(client, bob, "mine", "1.1.0")
    assert status == 403 and "maintainer" in body["error"]
    response = await client.post("/-/stage/package/mine", json=publish_body("mine", "1.1.0"))
    assert response.status == 401
    assert (await listing(client, alice))["total"] == 0


async def test_a_new_package_is_staged_and_created_on_approval_by_its_stager(client: TestClient, alice: str) -> None:
    bob = await add_user(client, "bob")
    stage_id = await staged(client, bob, "@acme/fresh", "0.1.0")
    assert (await client.get(path_of("@acme/fresh"))).status == 404
    found = await (await client.get("/-/v1/search", params={"text": "fresh"})).json()
    assert found["objects"] == []
    assert (await listing(client, alice))["total"] == 0
    assert (await approve(client, alice, stage_id))[0] == 404
    assert (await listing(client, bob, package="@acme/fresh"))["items"][0]["id"] == stage_id
    assert (await approve(client, bob, stage_id))[0] == 201
    doc = await packument(client, "@acme/fresh")
    assert [m["name"] for m in doc["maintainers"]] == ["bob"] and doc["dist-tags"] == {"latest": "0.1.0"}
    assert (await client.get("/@acme/fresh/-/fresh-0.1.0.tgz")).status == 200


async def test_only_a_maintainer_may_approve_and_the_stager_stays_the_publisher(client: TestClient, alice: str) -> None:
    bob = await add_user(client, "bob")
    await publish(client, alice, "team", "1.0.0")
    await owners(client, alice, "team", ["alice", "bob"])
    stage_id = await staged(client, bob, "team", "1.1.0")
    await owners(client, alice, "team", ["alice"])  # bob leaves the team
    assert (await client.get(f"/-/stage/{stage_id}", headers=bearer(bob))).status == 200  # his own stage
    status, body = await approve(client, bob, stage_id)
    assert status == 403 and "maintainer" in body["error"]
    assert "1.1.0" not in (await packument(client, "team"))["versions"]
    assert (await approve(client, alice, stage_id))[0] == 201
    manifest = (await packument(client, "team"))["versions"]["1.1.0"]
    assert manifest["_npmUser"]["name"] == "bob" and manifest["_stage"]["approvedBy"] == "alice"


async def test_publish_staged_refuses_a_direct_publish(make_client: MakeClient) -> None:
    client = await make_client(packages={"**": {"access": "$all", "publish": "$authenticated", "publish_staged": True}})
    alice = await add_user(client, "alice")
    response = await client.put("/gated", json=publish_body("gated", "1.0.0"), headers=bearer(alice))
    assert response.status == 403
    assert (await response.json())["error"] == (
        "gated must be published through staging: run npm stage publish, then npm stage approve")
    assert (await client.put("/gated", json=publish_body("gated", "1.0.0"))).status == 401
    stage_id = await staged(client, alice, "gated", "1.0.0")
    assert (await approve(client, alice, stage_id))[0] == 201
    assert (await packument(client, "gated"))["dist-tags"] == {"latest": "1.0.0"}


async def test_the_list_pages_most_recent_first_and_filters_by_package(client: TestClient, alice: str) -> None:
    ids = [await staged(client, alice, "paged", version) for version in ("1.0.0", "1.1.0", "1.2.0")]
    other = await staged(client, alice, "@acme/other", "3.0.0")
    everything = await listing(client, alice, perPage="100")
    assert everything["total"] == 4 and {i["id"] for i in everything["items"]} == {*ids, other}
    stamps = [i["createdAt"] for i in everything["items"]]
    assert stamps == sorted(stamps, reverse=True)
    first = await listing(client, alice, page="0", perPage="3")
    second = await listing(client, alice, page="1", perPage="3")
    assert (first["total"], first["page"], first["perPage"], len(first["items"])) == (4, 0, 3, 3)
    assert [i["id"] for i in first["items"] + second["items"]] == [i["id"] for i in everything["items"]]
    assert (await listing(client, alice, page="5"))["items"] == []
    only = await listing(client, alice, package="paged")
    assert only["total"] == 3 and {i["id"] for i in only["items"]} == set(ids)
    assert (await listing(client, alice, package="@acme/other"))["items"][0]["id"] == other
    assert (await listing(client, alice))["perPage"] == 10


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/-/stage/not-a-uuid"), ("GET", "/-/stage/not-a-uuid/tarball"),
        ("DELETE", "/-/stage/12345"), ("POST", "/-/stage/../approve"),
        ("GET", "/-/stage?perPage=0"), ("GET", "/-/stage?perPage=101"), ("GET", "/-/stage?page=-1"),
        ("GET", "/-/stage?page=first"),
    ],
)
async def test_malformed_ids_and_queries_are_400(client: TestClient, alice: str, method: str, path: str) -> None:
    response = await client.request(method, path, headers=bearer(alice))
    assert response.status in (400, 404), await response.text()
    assert (await response.json())["error"]


async def test_unknown_ids_are_404_in_npms_words(client: TestClient, alice: str) -> None:
    for method, path in (("GET", ""), ("GET", "/tarball"), ("DELETE", ""), ("POST", "/approve")):
        response = await client.request(method, f"/-/stage/{NO_SUCH_STAGE}{path}", headers=bearer(alice))
        assert (response.status, await response.json()) == (404, {"error": NOT_FOUND})
    response = await client.get(f"/-/stage/{NO_SUCH_STAGE.upper()}", headers=bearer(alice))
    assert response.status == 404


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b: b.update(_attachments={}), 400),
        (lambda b: b["_attachments"]["bad-1.0.0.tgz"].update(data="not base64!"), 400),
        (lambda b: b["versions"]["1.0.0"]["dist"].update(shasum="0" * 40), 422),
        (lambda b: b.update(versions={}), 400),
        (lambda b: b.update({"dist-tags": {"1.x": "1.0.0"}}), 400),
    ],
)
async def test_malformed_stage_bodies_are_refused_and_store_nothing(
    client: TestClient, alice: str, mutate: Any, status: int
) -> None:
    body = publish_body("bad", "1.0.0")
    mutate(body)
    response = await client.post("/-/stage/package/bad", json=body, headers=bearer(alice))
    assert response.status == status, await response.text()
    assert (await response.json())["error"]
    assert await client.app[PACKAGES].store.list_files("bad") == []
    assert (await listing(client, alice))["total"] == 0
    for raw in (b"not json", b"[1, 2]"):
        response = await client.post("/-/stage/package/bad", data=raw, headers=bearer(alice))
        assert response.status == 400
    response = await client.post("/-/stage/package/Not%20A%20Name", json=body, headers=bearer(alice))
    assert response.status == 400


async def test_stage_on_one_instance_and_approve_on_another(make_client: MakeClient) -> None:
    one = await make_client()
    other = await make_client()
    alice = await add_user(one, "alice")
    await publish(one, alice, "spread", "1.0.0")
    stage_id = await staged(one, alice, "spread", "1.1.0")
    # The number is held on every instance.
    assert (await other.put("/spread", json=publish_body("spread", "1.1.0"), headers=bearer(alice))).status == 409
    assert (await stage(other, alice, "spread", "1.1.0"))[0] == 409
    assert (await listing(other, alice))["items"][0]["id"] == stage_id
    assert (await approve(other, alice, stage_id))[0] == 201
    assert "1.1.0" in (await packument(other, "spread"))["versions"]
    assert (await approve(one, alice, stage_id))[0] == 404


async def test_the_package_page_shows_staged_versions_with_files_and_diff_to_maintainers_only(
    client: TestClient, alice: str
) -> None:
    bob = await add_user(client, "bob")
    await publish(client, alice, "page-ui", "1.0.0", license="MIT")
    tarball = make_tarball("page-ui", "1.1.0", files={"index.js": "1;\n", "lib/<b>.js": "2;\n"}, license="ISC")
    stage_id = await staged(client, alice, "page-ui", "1.1.0", tarball=tarball, license="ISC", tag="beta")
    text = await (await client.get("/-/web/detail/page-ui", headers=bearer(alice))).text()
    assert "Staged versions (1)" in text and f"npm stage approve {stage_id}" in text
    assert "<code>lib/&lt;b&gt;.js</code>" in text and "Files (3)" in text
    assert "-  &quot;license&quot;: &quot;MIT&quot;," in text and "+  &quot;license&quot;: &quot;ISC&quot;," in text
    assert "package.json 1.1.0 (staged)" in text
    for visitor in ({}, bearer(bob)):
        response = await client.get("/-/web/detail/page-ui", headers=visitor)
        assert response.status == 200 and "Staged versions" not in await response.text()


async def test_a_staged_tarball_that_changed_or_went_is_never_published(client: TestClient, alice: str) -> None:
    store = client.app[PACKAGES].store
    await publish(client, alice, "kept", "1.0.0")
    stage_id = await staged(client, alice, "kept", "1.1.0")
    (filename,) = [f for f in await store.list_files("kept") if "_staged-" in f]

    async def other_bytes() -> Any:
        yield make_tarball("kept", "1.1.0", files={"evil.js": "1;\n"})

    await store.write_tarball("kept", filename, other_bytes())
    status, body = await approve(client, alice, stage_id)
    assert status == 409 and "changed" in body["error"]
    await store.delete_tarball("kept", filename)
    status, body = await approve(client, alice, stage_id)
    assert status == 409 and "gone" in body["error"]
    assert "1.1.0" not in (await packument(client, "kept"))["versions"]
    assert set(await store.list_files("kept")) == {"package.json", "kept-1.0.0.tgz"}
    assert (await client.delete(f"/-/stage/{stage_id}", headers=bearer(alice))).status == 204
