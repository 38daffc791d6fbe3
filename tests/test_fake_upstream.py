"""The fake upstream registry does what the caching-mirror tests rely on.

Each test talks to a real `FakeUpstream` on 127.0.0.1 with an aiohttp client:
documents and tarballs are consistent (hashes recomputed here), validators
work, every fault does what it says, requests are recorded and counted.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import os
import shutil
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import semver
from yarl import URL

from tests.fake_upstream import ABBREVIATED_TYPE, FakeUpstream
from tests.fake_upstream_docs import ABBREVIATED_FIELDS, NPM_PACK_MTIME

PREFIX = "/artifactory/api/npm/npm-remote"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def get_json(client: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, Any]:
    async with client.get(URL(url, encoded=True), headers=headers) as response:
        return response.status, await response.json(content_type=None)


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


# -- npm version ranges, enough to check the tree (python-semver has no ^ or ~) --


def _partial(text: str) -> tuple[list[int], int]:
    """`1.2.x` → ([1, 2, 0], 2): the numbers and how many were given."""
    numbers: list[int] = []
    for part in text.lstrip("v=").split("-", 1)[0].split(".")[:3]:
        if part in ("x", "X", "*", ""):
            break
        numbers.append(int(part))
    return numbers + [0] * (3 - len(numbers)), len(numbers)


def _bump(numbers: list[int], index: int) -> semver.Version:
    upper = numbers[:index] + [0] * (3 - index)
    upper[index - 1] += 1
    return semver.Version(*upper)


def _comparator(token: str) -> list[tuple[str, semver.Version]]:
    op = next((op for op in (">=", "<=", ">", "<", "^", "~", "=") if token.startswith(op)), "")
    numbers, given = _partial(token[len(op) :])
    low = semver.Version(*numbers)
    if op in (">=", ">", "<", "<=") and given == 3:
        return [(op, low)]
    if op == ">=" or (op == "" and given == 0):
        return [(">=", low)]
    if op == "<":
        return [("<", low)]
    if op == "^":
        first = next((index for index, number in enumerate(numbers[:given]) if number), given - 1)
        return [(">=", low), ("<", _bump(numbers, max(first, 0) + 1))]
    if op == "~":
        return [(">=", low), ("<", _bump(numbers, min(max(given, 1), 2)))]
    if given == 3:
        return [("==", low)]
    return [(">=", low), ("<", _bump(numbers, given))]


def satisfies(version: str, npm_range: str) -> bool:
    parsed = semver.Version.parse(version)
    for alternative in npm_range.split("||"):
        checks = [check for token in alternative.split() for check in _comparator(token)]
        if all(parsed.match(f"{op}{bound}") for op, bound in checks):
            return True
    return False


def test_range_helper_matches_npm_semantics() -> None:
    assert satisfies("1.4.1", "^1.2.0") and not satisfies("2.0.0", "^1.2.0")
    assert satisfies("1.4.1", "~1.4.0") and not satisfies("1.5.0", "~1.4.0")
    assert satisfies("1.4.1", ">=1.1.0 <2.0.0") and not satisfies("1.0.0", ">=1.1.0 <2.0.0")
    assert satisfies("1.9.9", "1.x") and not satisfies("2.0.0", "1.x")
    assert satisfies("0.2.5", "^0.2.3") and not satisfies("0.3.0", "^0.2.3")
    assert satisfies("3.0.0", "^1.0.0 || ^3.0.0") and satisfies("1.2.3", "1.2.3")


# -- documents ------------------------------------------------------------------


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


# -- faults -----------------------------------------------------------------------


async def test_fail_answers_the_status_for_packument_and_tarballs(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    upstream.add_package("flaky", ["1.0.0"])
    upstream.fail("flaky", 503)
    assert (await get_json(client, f"{upstream.url}/flaky"))[0] == 503
    async with client.get(upstream.tarball_url("flaky", "1.0.0")) as response:
        assert response.status == 503
    upstream.fail("/flaky/-/flaky-1.0.0.tgz", 500)
    upstream.clear_faults()
    assert (await get_json(client, f"{upstream.url}/flaky"))[0] == 200
    upstream.fail("/flaky/-/flaky-1.0.0.tgz", 500)  # one path only
    assert (await get_json(client, f"{upstream.url}/flaky"))[0] == 200
    async with client.get(upstream.tarball_url("flaky", "1.0.0")) as response:
        assert response.status == 500
    assert [request.status for request in upstream.requests] == [503, 503, 200, 200, 500]


async def test_stall_fires_client_timeout_without_blocking_others(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    upstream.add_package("slowpoke", ["1.0.0"])
    upstream.add_package("snappy", ["1.0.0"])
    upstream.stall("slowpoke", 30.0)

    async def stalled() -> None:
        async with client.get(f"{upstream.url}/slowpoke", timeout=aiohttp.ClientTimeout(total=1.0)):
            pass

    task = asyncio.create_task(stalled())
    while upstream.count("slowpoke") == 0:
        await asyncio.sleep(0.01)
    assert (await get_json(client, f"{upstream.url}/snappy"))[0] == 200
    assert not task.done()  # answered while the other one waits
    with pytest.raises(asyncio.TimeoutError):
        await task
    assert upstream.count("slowpoke") == 1


async def test_stop_ends_stalls_at_once(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("stuck", ["1.0.0"])
    upstream.stall("stuck", 60.0)
    task = asyncio.create_task(client.get(f"{upstream.url}/stuck"))
    while upstream.count("stuck") == 0:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await upstream.stop()
    assert time.monotonic() - started < 0.8  # not the stall, nor the shutdown timeout
    with pytest.raises(aiohttp.ClientError):
        await task
    assert upstream.requests[-1].status is None  # cut off: nothing was answered


async def test_drop_mid_tarball_cuts_the_body(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("dropped", ["1.0.0"], files={"big.txt": os.urandom(40_000).hex()})
    size = len(upstream.tarball_bytes("dropped", "1.0.0"))
    upstream.drop_mid_tarball("dropped", "1.0.0", 1000)
    received = b""
    async with client.get(upstream.tarball_url("dropped", "1.0.0")) as response:
        assert response.status == 200 and response.content_length == size
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in response.content.iter_any():
                received += data
    assert received == upstream.tarball_bytes("dropped", "1.0.0")[:1000]
    upstream.clear_faults()  # and the server is fine afterwards
    async with client.get(upstream.tarball_url("dropped", "1.0.0")) as response:
        assert len(await response.read()) == size


async def test_corrupt_tarball_fails_the_integrity(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("corrupted", ["1.0.0"])
    upstream.corrupt_tarball("corrupted", "1.0.0")
    good = upstream.tarball_bytes("corrupted", "1.0.0")
    async with client.get(upstream.tarball_url("corrupted", "1.0.0")) as response:
        body = await response.read()
    assert len(body) == len(good) and body != good
    assert sri(body) != upstream.packument("corrupted")["versions"]["1.0.0"]["dist"]["integrity"]
    assert sum(a != b for a, b in zip(body, good)) == 1


async def test_no_content_length_streams_chunked(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("chunky", ["1.0.0"])
    upstream.no_content_length("chunky", "1.0.0")
    async with client.get(upstream.tarball_url("chunky", "1.0.0")) as response:
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert await response.read() == upstream.tarball_bytes("chunky", "1.0.0")


async def test_slow_tarball_trickles_to_every_client(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("trickle", ["1.0.0"])
    expected = upstream.tarball_bytes("trickle", "1.0.0")
    chunks = -(-len(expected) // 100)
    upstream.slow_tarball("trickle", "1.0.0", chunk=100, delay=0.03)

    async def fetch() -> bytes:
        async with client.get(upstream.tarball_url("trickle", "1.0.0")) as response:
            assert response.content_length == len(expected)
            return await response.read()

    started = time.monotonic()
    bodies = await asyncio.gather(*(fetch() for _ in range(5)))
    assert bodies == [expected] * 5
    assert time.monotonic() - started >= 0.03 * (chunks - 1)
    assert upstream.tarball_count("trickle", "1.0.0") == 5


async def test_down_answers_503_until_back(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("sometimes", ["1.0.0"])
    upstream.set_down(True)
    assert (await get_json(client, f"{upstream.url}/sometimes"))[0] == 503
    assert (await get_json(client, f"{upstream.url}/-/ping"))[0] == 503
    upstream.set_down(False)
    assert (await get_json(client, f"{upstream.url}/sometimes"))[0] == 200


async def test_stop_refuses_connections_and_start_comes_back_on_the_same_port(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    upstream.add_package("phoenix", ["1.0.0"])
    url = upstream.url
    assert (await get_json(client, f"{url}/phoenix"))[0] == 200
    await upstream.stop()
    with pytest.raises(aiohttp.ClientConnectorError):
        await get_json(client, f"{url}/phoenix")
    await upstream.start()
    assert upstream.url == url
    assert (await get_json(client, f"{url}/phoenix"))[0] == 200


async def test_require_auth_refuses_other_credentials(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("private", ["1.0.0"])
    upstream.require_auth("Bearer s3cret")
    assert await get_json(client, f"{upstream.url}/private") == (401, {"error": "authentication required"})
    assert (await get_json(client, f"{upstream.url}/private", Authorization="Bearer wrong"))[0] == 401
    assert (await get_json(client, f"{upstream.url}/private", Authorization="Bearer s3cret"))[0] == 200
    async with client.get(upstream.tarball_url("private", "1.0.0")) as response:
        assert response.status == 401
    upstream.clear_faults()  # not a fault: still required
    assert (await get_json(client, f"{upstream.url}/private"))[0] == 401
    assert upstream.requests[2].headers["authorization"] == "Bearer s3cret"
    upstream.require_auth(None)
    assert (await get_json(client, f"{upstream.url}/private"))[0] == 200


# -- observation ------------------------------------------------------------------


async def test_requests_are_recorded_and_counted(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_package("counted", ["1.0.0", "1.0.1"])
    upstream.fail("missing", 500)
    headers = {"Via": "1.1 tarhold", "User-Agent": "npm/10 node/20", "Accept": "application/json"}
    for path in ("/counted", "/counted", "/missing", "/counted/-/counted-1.0.1.tgz", "/-/ping?write=true"):
        async with client.get(upstream.url + path, headers=headers):
            pass
    assert upstream.count("counted") == 2 and upstream.count("missing") == 1
    assert upstream.count("/counted") == 2 and upstream.count("/-/ping") == 1
    assert upstream.tarball_count("counted", "1.0.1") == 1 and upstream.tarball_count("counted", "1.0.0") == 0
    first = upstream.requests[0]
    assert (first.method, first.path, first.kind, first.status) == ("GET", "/counted", "packument", 200)
    assert first.headers["via"] == "1.1 tarhold" and first.headers["User-Agent"] == "npm/10 node/20"
    assert upstream.requests[-1].path == "/-/ping?write=true"
    assert [request.time for request in upstream.requests] == sorted(request.time for request in upstream.requests)
    upstream.reset_counts()
    assert upstream.requests == [] and upstream.count("counted") == 0


async def test_search_finds_by_name_description_and_keywords(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    upstream.add_package("alpha-tool", {"1.0.0": {"keywords": ["bundler"]}})
    upstream.add_package("@acme/beta", {"2.0.0": {"description": "a bundler helper"}})
    upstream.add_package("gamma", ["1.0.0"])
    status, result = await get_json(client, f"{upstream.url}/-/v1/search?text=bundler&size=20")
    assert status == 200 and result["total"] == 2
    found = {item["package"]["name"]: item for item in result["objects"]}
    assert set(found) == {"alpha-tool", "@acme/beta"}
    assert found["@acme/beta"]["package"]["scope"] == "acme" and found["@acme/beta"]["package"]["version"] == "2.0.0"
    assert {"final", "detail"} <= set(found["alpha-tool"]["score"])
    assert (await get_json(client, f"{upstream.url}/-/v1/search?text=gamma"))[1]["total"] == 1


async def test_audit_endpoints_answer_and_can_be_disabled(
    upstream: FakeUpstream, client: aiohttp.ClientSession
) -> None:
    bulk = f"{upstream.url}/-/npm/v1/security/advisories/bulk"
    quick = f"{upstream.url}/-/npm/v1/security/audits/quick"
    async with client.post(bulk, json={"vulnerable-pkg": ["1.0.0"], "fine": ["1.0.0"]}) as response:
        answer = await response.json()
    assert list(answer) == ["vulnerable-pkg"] and answer["vulnerable-pkg"][0]["severity"] == "high"
    async with client.post(bulk, json={"vulnerable-pkg": ["2.0.0"]}) as response:
        assert await response.json() == {}
    tree = {"name": "app", "version": "1.0.0", "requires": {"x": "^1.0.0"},
            "dependencies": {"x": {"version": "1.0.0", "dependencies": {"vulnerable-pkg": {"version": "1.2.0"}}}}}
    async with client.post(quick, json=tree) as response:
        report = await response.json()
    assert report["metadata"]["vulnerabilities"]["high"] == 1 and len(report["advisories"]) == 1
    assert upstream.requests[0].kind == "audit" and b"vulnerable-pkg" in upstream.requests[0].body
    upstream.disable_audit()
    async with client.post(bulk, json={"vulnerable-pkg": ["1.0.0"]}) as response:
        assert response.status == 404


async def test_gzip_documents_when_asked(client: aiohttp.ClientSession) -> None:
    async with FakeUpstream(gzip=True) as upstream:
        upstream.add_package("zipped", ["1.0.0"])
        async with client.get(f"{upstream.url}/zipped", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert (await response.json())["name"] == "zipped"


# -- package sets -----------------------------------------------------------------


async def test_tree_dependency_graph_is_closed(upstream: FakeUpstream) -> None:
    names = upstream.add_tree("forest", size=12)
    assert len(names) == 12 and names[0] == "forest"
    docs = {name: upstream.packument(name) for name in names}
    dependents: dict[str, set[str]] = {}
    for name, doc in docs.items():
        for manifest in doc["versions"].values():
            for dep, dep_range in (manifest.get("dependencies") or {}).items():
                assert dep in docs, f"{name} depends on {dep}, which the fake does not serve"
                assert any(satisfies(version, dep_range) for version in docs[dep]["versions"]), (name, dep, dep_range)
                dependents.setdefault(dep, set()).add(name)

    # What npm would install: the highest satisfying version of each dependency, from the root's latest.
    resolved: dict[str, str] = {}
    queue = [("forest", "^1.0.0")]
    while queue:
        name, dep_range = queue.pop()
        version = max((v for v in docs[name]["versions"] if satisfies(v, dep_range)), key=semver.Version.parse)
        if resolved.setdefault(name, version) == version:
            queue += list((docs[name]["versions"][version].get("dependencies") or {}).items())
    assert len(resolved) >= 10 and set(resolved) == set(names)
    assert any(name.startswith("@") for name in resolved)
    assert any("bin" in docs[name]["versions"][version] for name, version in resolved.items())
    shared = [dep for dep, users in dependents.items() if len(users) >= 3]
    assert shared and resolved[shared[0]] == "1.4.1" and docs[shared[0]]["dist-tags"]["latest"] == "2.0.0"


async def test_large_packument_is_several_megabytes(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_large_packument("huge")
    async with client.get(f"{upstream.url}/huge") as response:
        body = await response.read()
    assert len(body) > 2_000_000
    doc = upstream.packument("huge")
    assert len(doc["versions"]) == 3000 and len(doc["readme"]) > 10_000
    version = "29.9.9"
    assert doc["versions"][version]["dist"]["integrity"] == sri(upstream.tarball_bytes("huge", version))


@pytest.mark.npm
async def test_real_npm_installs_the_tree(upstream: FakeUpstream, tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH", pytrace=False)
    names = upstream.add_tree("npm-tree", size=12)
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name": "consumer", "version": "1.0.0", "private": true}')
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "npm_config_userconfig": str(tmp_path / "npmrc"),
        "npm_config_globalconfig": str(tmp_path / "global-npmrc"),
        "npm_config_cache": str(tmp_path / "cache"),
        "npm_config_registry": upstream.url + "/",
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
    }
    process = await asyncio.create_subprocess_exec(
        npm, "install", "npm-tree", cwd=project, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()
    installed = {name for name in names if (project / "node_modules" / name / "package.json").is_file()}
    assert installed == set(names)
    assert (project / "node_modules" / ".bin" / "npm-tree-cli").exists()
    assert upstream.tarball_count("npm-tree-leaf", "1.4.1") == 1
