"""Provenance attestations on every backend: `npm publish --provenance` bodies, `dist.attestations`,
`GET /-/npm/v1/attestations/{name}@{version}` for local and mirrored versions, unpublish.

The bundles are made by `tests.support.fake_upstream_docs.provenance_bundle`: a real-shaped
Sigstore bundle whose in-toto statement names the version and its tarball's sha512, with a
signature that is any base64. Only Sigstore's CA can make one that verifies, and tarhold does
not verify it (that needs Sigstore's trust root from the internet; registry.domain.provenance):
what it checks, and what these tests hold it to, is that the statement is about the bytes
and the version it is published with.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from registry.http.appkeys import DATABASE, PACKAGES
from storage.base import NotFound, StorageError
from tests.support.fake_upstream import FakeUpstream
from tests.support.fake_upstream_docs import provenance_bundle, purl

from .conftest import MakeClient
from .packages import make_tarball, packument, path_of, publish_body, tarball_name
from .users import add_user, bearer

SLSA = "https://slsa.dev/provenance/v1"
PACOTE = Path(shutil.which("npm") or "/nonexistent").resolve().parent.parent / "node_modules" / "pacote"
# pacote as `npm audit signatures` runs it (verifyAttestations), with sigstore.verify standing in
# for the signature check: only Sigstore's CA can sign a bundle that passes it, and it needs
# Sigstore's trust root from the internet. Everything else (fetching this registry's endpoint,
# the subject's purl and digest against the manifest) is npm's own code.
VERIFY = """
const [pacoteDir, spec, registry] = process.argv.slice(1);
const sigstore = require(require.resolve('sigstore', {paths: [pacoteDir]}));
let verified = 0;
Object.defineProperty(sigstore, 'verify', {value: async () => { verified += 1; }});  // a getter: replaced
require(pacoteDir).manifest(spec, {registry, verifyAttestations: true})
  .then(m => console.log(JSON.stringify({ok: true, verified, attestations: m._attestations})))
  .catch(e => console.log(JSON.stringify({ok: false, code: e.code, message: e.message})));
"""


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        fake.add_package("@up/attested", ["1.0.0", "1.1.0"])
        fake.attest("@up/attested", "1.0.0")
        yield fake


@pytest.fixture
async def client(make_client: MakeClient, upstream: FakeUpstream) -> TestClient:
    return await make_client(
        uplinks={"up": {"url": upstream.url, "timeout": "5s"}},
        packages={
            "@up/*": {"access": "$all", "proxy": "up"},
            "@private/*": {"access": "$authenticated", "publish": "$authenticated"},
            "**": {"access": "$all", "publish": "$authenticated"},
        },
    )


def provenance_body(name: str, version: str, bundle: dict[str, Any] | None = None, **make: Any) -> dict[str, Any]:
    """The body `npm publish --provenance` sends: the tarball, and the bundle as a JSON string."""
    tarball = make_tarball(name, version)
    body = publish_body(name, version, tarball)
    bundle = bundle if bundle is not None else provenance_bundle(name, version, tarball, **make)
    data = orjson.dumps(bundle).decode()
    body["_attachments"][f"{name}-{version}.sigstore"] = {
        "content_type": bundle.get("mediaType"), "data": data, "length": len(data),
    }
    return body


async def put(client: TestClient, token: str, name: str, body: dict[str, Any]) -> tuple[int, str]:
    response = await client.put(path_of(name), json=body, headers=bearer(token))
    return response.status, (await response.json()).get("error", "")


async def attestations(client: TestClient, spec: str, **headers: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(f"/-/npm/v1/attestations/{spec}", headers=headers)
    return response.status, await response.json()


async def stored_item(client: TestClient, name: str, version: str) -> dict[str, Any] | None:
    try:
        return await client.app[DATABASE].get(f"ATTEST#{name}", version)
    except NotFound:
        return None


async def test_a_published_bundle_is_kept_named_in_dist_and_served_on_this_registry_s_url(
    client: TestClient,
) -> None:
    alice = await add_user(client, "alice")
    body = provenance_body("@acme/prov", "1.0.0")
    bundle = orjson.loads(body["_attachments"]["@acme/prov-1.0.0.sigstore"]["data"])
    assert await put(client, alice, "@acme/prov", body) == (201, "")

    base = str(client.make_url("")).rstrip("/")
    dist = (await packument(client, "@acme/prov"))["versions"]["1.0.0"]["dist"]
    assert dist["attestations"] == {
        "url": f"{base}/-/npm/v1/attestations/@acme%2fprov@1.0.0", "provenance": {"predicateType": SLSA},
    }
    corgi = await packument(client, "@acme/prov", Accept="application/vnd.npm.install-v1+json")
    assert corgi["versions"]["1.0.0"]["dist"]["attestations"] == dist["attestations"]
    # Rewritten per request, as tarball URLs are: another public host gets its own.
    proxied = await packument(client, "@acme/prov", **{"X-Forwarded-Host": "npm.example.com"})
    assert proxied["versions"]["1.0.0"]["dist"]["attestations"]["url"] == (
        "http://npm.example.com/-/npm/v1/attestations/@acme%2fprov@1.0.0")

    for spec in ("@acme%2fprov@1.0.0", "@acme/prov@1.0.0", "%40acme%2Fprov@1.0.0"):
        assert await attestations(client, spec) == (200, {"attestations": [{"predicateType": SLSA, "bundle": bundle}]})
    assert (await stored_item(client, "@acme/prov", "1.0.0") or {}).get("bundle") == bundle
    # A version published without a bundle has no attestations.
    assert await put(client, alice, "@acme/prov", publish_body("@acme/prov", "1.1.0")) == (201, "")
    assert "attestations" not in (await packument(client, "@acme/prov"))["versions"]["1.1.0"]["dist"]
    assert (await attestations(client, "@acme%2fprov@1.1.0"))[0] == 404


def tampered(bundle: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {**bundle, "dsseEnvelope": {**bundle["dsseEnvelope"], **envelope}}


def refusals(name: str, version: str) -> list[tuple[dict[str, Any], int, str]]:
    """(body, status, a part of the message) for bundles that must be refused."""
    other_bytes = hashlib.sha512(b"other bytes").hexdigest()
    good = provenance_bundle(name, version, make_tarball(name, version))
    not_base64 = provenance_body(name, version, tampered(good, payload="%%%"))
    misnamed = provenance_body(name, version)
    misnamed["_attachments"][f"{name}-9.9.9.sigstore"] = misnamed["_attachments"].pop(f"{name}-{version}.sigstore")
    not_json = provenance_body(name, version)
    not_json["_attachments"][f"{name}-{version}.sigstore"]["data"] = "{not json"
    statement = orjson.loads(base64.b64decode(good["dsseEnvelope"]["payload"]))
    no_predicate = tampered(good, payload=base64.b64encode(orjson.dumps({**statement, "predicateType": None})).decode())
    return [
        (provenance_body(name, version, sha512=other_bytes), 422, "digest.sha512"),
        (provenance_body(name, version, subject=purl(name, "0.0.1")), 422, purl(name, version)),
        (provenance_body(name, version, subject=f"pkg:npm/{name}@{version}"), 422, "%40"),  # npm encodes the scope's @
        (not_json, 400, "not valid JSON"),
        (not_base64, 400, "base64"),
        (provenance_body(name, version, tampered(good, payloadType="text/plain")), 400, "payloadType"),
        (provenance_body(name, version, tampered(good, signatures=[])), 400, "signatures"),
        (provenance_body(name, version, {**good, "mediaType": "application/json"}), 400, "mediaType"),
        (provenance_body(name, version, no_predicate), 400, "predicateType"),
        (misnamed, 400, f"{name}-{version}.sigstore"),
        (provenance_body(name, version, {**good, "padding": "x" * 300_000}), 413, "larger than"),
    ]


async def test_bundles_about_other_bytes_or_versions_malformed_or_oversized_are_refused_and_leave_nothing(
    client: TestClient,
) -> None:
    alice = await add_user(client, "alice")
    name, version = "@acme/refused", "1.0.0"
    for body, status, message in refusals(name, version):
        answer = await put(client, alice, name, body)
        assert answer[0] == status and message in answer[1], (status, message, answer)
        assert (await client.get(path_of(name))).status == 404
        assert (await client.get(f"/{name}/-/{tarball_name(name, version)}")).status == 404
        assert await stored_item(client, name, version) is None
    two = provenance_body(name, version)
    two["_attachments"]["second.sigstore"] = two["_attachments"][f"{name}-{version}.sigstore"]
    assert (await put(client, alice, name, two))[0] == 400
    # Nothing was taken: the same version publishes with a good bundle.
    assert await put(client, alice, name, provenance_body(name, version)) == (201, "")
    assert await stored_item(client, name, version) is not None


async def test_unpublishing_a_version_or_the_package_deletes_its_bundles(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        assert await put(client, alice, "unpub", provenance_body("unpub", version)) == (201, "")
    doc = await (await client.get("/unpub?write=true", headers=bearer(alice))).json()
    del doc["versions"]["1.2.0"]
    doc["dist-tags"]["latest"] = "1.1.0"
    response = await client.put(f"/unpub/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 201, await response.text()
    assert await stored_item(client, "unpub", "1.2.0") is None
    assert (await attestations(client, "unpub@1.2.0"))[0] == 404
    assert (await attestations(client, "unpub@1.1.0"))[0] == 200

    doc = await (await client.get("/unpub?write=true", headers=bearer(alice))).json()
    response = await client.delete(f"/unpub/-rev/{doc['_rev']}", headers=bearer(alice))
    assert response.status == 200, await response.text()
    for version in ("1.0.0", "1.1.0"):
        assert await stored_item(client, "unpub", version) is None
        assert (await attestations(client, f"unpub@{version}"))[0] == 404


async def test_a_version_read_through_another_host_can_still_be_deprecated(client: TestClient) -> None:
    """npm sends the document it read back: its rewritten attestations URL is no change of `dist`."""
    alice = await add_user(client, "alice")
    assert await put(client, alice, "dep", provenance_body("dep", "1.0.0")) == (201, "")
    response = await client.get("/dep?write=true", headers={**bearer(alice), "X-Forwarded-Host": "other.example.com"})
    doc = await response.json()
    doc["versions"]["1.0.0"]["deprecated"] = "use 2"
    response = await client.put(f"/dep/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 201, await response.text()
    doc["versions"]["1.0.0"]["dist"]["attestations"]["provenance"]["predicateType"] = "https://example.com/other"
    response = await client.put(f"/dep/-rev/{doc['_rev']}", json=doc, headers=bearer(alice))
    assert response.status == 400


async def test_reading_needs_read_access_and_bad_paths_are_400(client: TestClient) -> None:
    alice = await add_user(client, "alice")
    assert await put(client, alice, "@private/p", provenance_body("@private/p", "1.0.0")) == (201, "")
    assert (await attestations(client, "@private%2fp@1.0.0"))[0] == 401
    assert (await attestations(client, "@private%2fp@1.0.0", **bearer(alice)))[0] == 200
    assert (await attestations(client, "nothing-here@1.0.0"))[0] == 404
    for spec in ("no-version", "@scope%2fname", "bad%2f..%2fname@1.0.0", "x@1.0.0%2f..", "x" * 600 + "@1.0.0"):
        status, answer = await attestations(client, spec)
        assert status == 400 and "name}@{version}" in answer["error"], (spec, status, answer)


def asked(upstream: FakeUpstream, name: str) -> list[str]:
    """The versions of `name` the upstream was asked for attestations, in order."""
    return [r.version or "" for r in upstream.requests if r.kind == "attestations" and r.name == name]


async def test_mirrored_versions_point_here_and_the_uplink_s_answer_is_passed_through_and_kept(
    client: TestClient, upstream: FakeUpstream,
) -> None:
    base = str(client.make_url("")).rstrip("/")
    doc = await packument(client, "@up/attested")
    assert upstream.packument("@up/attested")["versions"]["1.0.0"]["dist"]["attestations"]["url"].startswith(upstream.url)
    assert doc["versions"]["1.0.0"]["dist"]["attestations"] == {
        "url": f"{base}/-/npm/v1/attestations/@up%2fattested@1.0.0", "provenance": {"predicateType": SLSA},
    }
    assert "attestations" not in doc["versions"]["1.1.0"]["dist"]

    bundle = provenance_bundle("@up/attested", "1.0.0", upstream.tarball_bytes("@up/attested", "1.0.0"))
    for _ in range(3):
        status, answer = await attestations(client, "@up%2fattested@1.0.0")
        assert status == 200 and answer == {"attestations": [{"predicateType": SLSA, "bundle": bundle}]}
    assert asked(upstream, "@up/attested") == ["1.0.0"]  # kept: asked once
    # A version without dist.attestations is not asked for.
    assert (await attestations(client, "@up%2fattested@1.1.0"))[0] == 404
    assert asked(upstream, "@up/attested") == ["1.0.0"]


async def test_an_uplink_without_the_attestations_is_404_and_a_failing_one_502(
    client: TestClient, upstream: FakeUpstream,
) -> None:
    upstream.add_package("@up/flaky", ["1.0.0", "2.0.0"])
    upstream.attest("@up/flaky", "1.0.0")
    upstream.attest("@up/flaky", "2.0.0")
    assert (await client.get("/@up%2fflaky")).status == 200
    upstream.fail("/-/npm/v1/attestations/@up/flaky@1.0.0", 404)
    upstream.fail("/-/npm/v1/attestations/@up/flaky@2.0.0", 500)
    assert (await attestations(client, "@up%2fflaky@1.0.0"))[0] == 404
    status, answer = await attestations(client, "@up%2fflaky@2.0.0")
    assert status == 502 and "up" in answer["error"]
    upstream.clear_faults()
    assert (await attestations(client, "@up%2fflaky@1.0.0"))[0] == 404  # its 404 is kept too
    assert (await attestations(client, "@up%2fflaky@2.0.0"))[0] == 200  # a failure is not


async def test_a_publish_whose_packument_write_fails_leaves_no_bundle(
    client: TestClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = await add_user(client, "alice")

    async def failing(name: str, fn: Any) -> Any:
        raise StorageError("the packument write failed")

    monkeypatch.setattr(client.app[PACKAGES], "update_packument", failing)
    assert (await put(client, alice, "halfway", provenance_body("halfway", "1.0.0")))[0] == 503
    assert await stored_item(client, "halfway", "1.0.0") is None
    monkeypatch.undo()
    assert await put(client, alice, "halfway", provenance_body("halfway", "1.0.0")) == (201, "")


@pytest.mark.skipif(not PACOTE.is_dir(), reason="npm (with its pacote) is not installed")
async def test_npm_s_own_verifier_finds_the_subject_and_refuses_a_changed_integrity(
    client: TestClient, tmp_path: Path,
) -> None:
    alice = await add_user(client, "alice")
    assert await put(client, alice, "@acme/checked", provenance_body("@acme/checked", "1.0.0")) == (201, "")
    registry = str(client.make_url("/"))

    async def verify(spec: str) -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            "node", "-e", VERIFY, str(PACOTE), spec, registry,
            stdout=asyncio.subprocess.PIPE, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        return dict(json.loads(out.decode().strip().splitlines()[-1]))

    for spec in ("@acme/checked@1.0.0", "@up/attested@1.0.0"):  # published here, and mirrored
        answer = await verify(spec)
        assert answer["ok"] and answer["verified"] == 1, answer
        assert answer["attestations"]["url"].startswith(registry.rstrip("/") + "/-/npm/v1/attestations/")

    def tamper(doc: dict[str, Any] | None) -> dict[str, Any]:
        assert doc is not None
        doc["versions"]["1.0.0"]["dist"]["integrity"] = "sha512-" + base64.b64encode(b"\0" * 64).decode()
        return doc

    await client.app[PACKAGES].update_packument("@acme/checked", tamper)
    answer = await verify("@acme/checked@1.0.0")
    assert not answer["ok"] and answer["code"] == "EATTESTATIONSUBJECT", answer
