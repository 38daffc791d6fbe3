"""The fake upstream serves documents and tarballs the way the npm registry does.

Documents and tarballs are consistent (hashes recomputed here), validators
(ETag, If-None-Match) work, every name form and a path prefix answer.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile

import aiohttp
import orjson
from yarl import URL

from tests.http.fake_upstream.helpers import PREFIX, get_json, sri
from tests.support.fake_upstream import ABBREVIATED_TYPE, FakeUpstream
from tests.support.fake_upstream_docs import ABBREVIATED_FIELDS, NPM_PACK_MTIME


async def test_packument_has_the_registry_shape(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package(
        "shape-pkg",
        {
            "1.0.0": {"dependencies": {"dep-a": "^1.0.0"}, "engines": {"node": ">=18"}},
            "1.1.0": {"scripts": {"postinstall": "node setup.js"}, "description": "the newest"},
            "2.0.0-rc.1": {"deprecated": "try 1.1.0"},
        },
    )
    status, doc = await get_json(client, f"{upstream.url}/shape-pkg")

    assert status == 200
    required = (
        "_id", "_rev", "name", "description", "dist-tags", "versions", "time", "maintainers", "readme", "license"
    )
    assert [key for key in required if key not in doc] == []
    assert doc["_id"] == doc["name"] == "shape-pkg"
    assert doc["dist-tags"] == {"latest": "1.1.0"}  # the highest release, not the prerelease
    assert doc["description"] == "the newest"
    assert set(doc["time"]) == {"created", "modified", "1.0.0", "1.1.0", "2.0.0-rc.1"}
    assert doc["time"]["created"] < doc["time"]["1.1.0"] < doc["time"]["modified"]
    manifest = doc["versions"]["1.0.0"]
    assert manifest["_id"] == "shape-pkg@1.0.0"
    assert manifest["dependencies"] == {"dep-a": "^1.0.0"} and manifest["engines"] == {"node": ">=18"}
    assert manifest["dist"]["tarball"] == f"{upstream.url}/shape-pkg/-/shape-pkg-1.0.0.tgz"
    assert doc["versions"]["1.1.0"]["hasInstallScript"] is True
    assert doc["versions"]["2.0.0-rc.1"]["deprecated"] == "try 1.1.0"
    assert upstream.packument("shape-pkg") == doc


async def test_tarballs_match_integrity_and_shasum(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("@scope/hashed", ["1.0.0", "1.0.1"], files={"lib/extra.js": "exports.x = 1;\n"})
    for version, manifest in upstream.packument("@scope/hashed")["versions"].items():
        async with client.get(manifest["dist"]["tarball"]) as response:
            assert response.status == 200
            body = await response.read()
            assert response.content_length == len(body)
        assert sri(body) == manifest["dist"]["integrity"]
        assert hashlib.sha1(body).hexdigest() == manifest["dist"]["shasum"]
        assert body == upstream.tarball_bytes("@scope/hashed", version)
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            members = {member.name: member for member in tar.getmembers()}
            package_json = tar.extractfile("package/package.json")
            assert package_json is not None
            assert b'"version": "%s"' % version.encode() in package_json.read()
        assert {"package/package.json", "package/index.js", "package/lib/extra.js"} <= set(members)
        assert {member.mtime for member in members.values()} == {NPM_PACK_MTIME}
        assert manifest["dist"]["fileCount"] == len(members)


async def test_tarball_bytes_are_deterministic() -> None:
    async with FakeUpstream() as first, FakeUpstream() as second:
        for fake in (first, second):
            fake.add_package("same", {"1.0.0": {"bin": {"same": "bin/same.js"}}})
        assert first.tarball_bytes("same", "1.0.0") == second.tarball_bytes("same", "1.0.0")
        assert gzip.decompress(first.tarball_bytes("same", "1.0.0"))[:7] == b"package"


async def test_etag_gives_304_and_a_new_release_changes_it(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    upstream.add_package("tagged", ["1.0.0"])
    url = f"{upstream.url}/tagged"
    async with client.get(url) as response:
        etag = response.headers["ETag"]
        assert not etag.startswith("W/") and response.headers["Last-Modified"].endswith("GMT")
        assert etag == '"' + hashlib.sha256(await response.read()).hexdigest()[:40] + '"'
    async with client.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304 and await response.read() == b""
    upstream.add_package("tagged", ["1.1.0"])
    async with client.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 200 and response.headers["ETag"] != etag
        assert set((await response.json())["versions"]) == {"1.0.0", "1.1.0"}


async def test_abbreviated_document_has_install_fields_and_its_own_etag(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    upstream.add_package("corgi", {"1.0.0": {"dependencies": {"a": "1"}, "bin": {"corgi": "cli.js"}}})
    accept = f"{ABBREVIATED_TYPE}; q=1.0, application/json; q=0.8, */*"
    async with client.get(f"{upstream.url}/corgi", headers={"Accept": accept}) as response:
        assert response.content_type == ABBREVIATED_TYPE
        etag, doc = response.headers["ETag"], await response.json(content_type=None)
    assert set(doc) == {"name", "modified", "dist-tags", "versions"}
    manifest = doc["versions"]["1.0.0"]
    assert set(manifest) <= set(ABBREVIATED_FIELDS) and "readme" not in manifest
    assert manifest["bin"] == {"corgi": "cli.js"} and manifest["dist"]["integrity"].startswith("sha512-")
    async with client.get(f"{upstream.url}/corgi") as response:
        assert response.headers["ETag"] != etag
    headers = {"Accept": accept, "If-None-Match": etag}
    async with client.get(f"{upstream.url}/corgi", headers=headers) as response:
        assert response.status == 304


async def test_head_answers_lengths_without_bodies(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("headed", ["1.0.0"])
    async with client.head(f"{upstream.url}/headed") as response:
        assert response.status == 200 and response.content_length == len(upstream.packument_bytes("headed"))
    async with client.head(upstream.tarball_url("headed", "1.0.0")) as response:
        assert response.status == 200 and response.content_length == len(upstream.tarball_bytes("headed", "1.0.0"))
    assert upstream.count("headed") == 1 and upstream.tarball_count("headed", "1.0.0") == 1


async def test_unknown_package_and_tarball_are_404(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("known", ["1.0.0"])
    assert await get_json(client, f"{upstream.url}/unknown") == (404, {"error": "Not found"})
    assert (await get_json(client, f"{upstream.url}/known/-/known-9.9.9.tgz"))[0] == 404
    assert (await get_json(client, f"{upstream.url}/known/9.9.9"))[0] == 404
    assert (await get_json(client, f"{upstream.url}/known/latest"))[1]["version"] == "1.0.0"


async def test_scoped_names_answer_in_every_form(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("@acme/widget", ["1.0.0"])
    forms = ("/@acme%2fwidget", "/@acme%2Fwidget", "/@acme/widget")
    docs = [await get_json(client, f"{upstream.url}{path}") for path in forms]
    assert all(status == 200 and doc["name"] == "@acme/widget" for status, doc in docs)
    tarball = docs[0][1]["versions"]["1.0.0"]["dist"]["tarball"]
    assert tarball == f"{upstream.url}/@acme/widget/-/widget-1.0.0.tgz"
    async with client.get(URL(f"{upstream.url}/@acme%2fwidget/-/widget-1.0.0.tgz", encoded=True)) as response:
        assert await response.read() == upstream.tarball_bytes("@acme/widget", "1.0.0")
    assert upstream.count("@acme/widget") == 3
    assert upstream.count("/@acme%2fwidget") == 1  # a path counts only its exact raw form
    assert upstream.tarball_count("@acme/widget", "1.0.0") == 1


async def test_prefix_serves_everything_under_it(client: aiohttp.ClientSession) -> None:
    async with FakeUpstream(prefix=PREFIX + "/") as upstream:
        upstream.add_package("@acme/prefixed", ["1.0.0"])
        assert upstream.url == f"http://127.0.0.1:{upstream.port}{PREFIX}"
        status, doc = await get_json(client, f"{upstream.url}/@acme%2fprefixed")
        assert status == 200
        tarball = doc["versions"]["1.0.0"]["dist"]["tarball"]
        assert tarball.startswith(upstream.url + "/@acme/prefixed/-/")
        async with client.get(tarball) as response:
            assert sri(await response.read()) == doc["versions"]["1.0.0"]["dist"]["integrity"]
        assert (await get_json(client, f"http://127.0.0.1:{upstream.port}/@acme%2fprefixed"))[0] == 404
        assert upstream.count("@acme/prefixed") == 1
        assert upstream.count("/@acme%2fprefixed") == 1 == upstream.count(f"{PREFIX}/@acme%2fprefixed")


async def test_an_attested_version_lists_its_attestations_and_serves_them(
    upstream: FakeUpstream, client: aiohttp.ClientSession,
) -> None:
    upstream.add_package("@prov/pkg", ["1.0.0", "1.1.0"])
    bundle = upstream.attest("@prov/pkg", "1.0.0")
    status, doc = await get_json(client, f"{upstream.url}/@prov%2fpkg")
    url = f"{upstream.url}/-/npm/v1/attestations/@prov%2fpkg@1.0.0"
    assert status == 200 and doc["versions"]["1.0.0"]["dist"]["attestations"] == {
        "url": url, "provenance": {"predicateType": "https://slsa.dev/provenance/v1"}}
    assert "attestations" not in doc["versions"]["1.1.0"]["dist"]
    status, answer = await get_json(client, url)
    assert status == 200 and answer == {"attestations": [{"predicateType": "https://slsa.dev/provenance/v1", "bundle": bundle}]}
    statement = orjson.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["subject"] == [{"name": "pkg:npm/%40prov/pkg@1.0.0", "digest": {
        "sha512": hashlib.sha512(upstream.tarball_bytes("@prov/pkg", "1.0.0")).hexdigest()}}]
    assert (await get_json(client, f"{upstream.url}/-/npm/v1/attestations/@prov%2fpkg@1.1.0"))[0] == 404
