"""The fake upstream records and counts every request, and answers search,
audit and gzip as the mirror tests expect.
"""

from __future__ import annotations

import aiohttp

from tests.http.fake_upstream.helpers import get_json
from tests.support.fake_upstream import FakeUpstream


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
