"""Registry signatures on every backend: the key list, `dist.signatures` on publish, rotation,
and npm's own verifier (pacote, from the npm CLI on this machine) accepting what tarhold signs."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry.domain.signing import current_key, rotate
from registry.http.appkeys import DATABASE, PACKAGES, SECRET
from tests.support.fake_upstream import FakeUpstream

from .conftest import MakeClient
from .packages import packument, publish
from .users import add_user

NPM_ROOT = Path(shutil.which("npm") or "/nonexistent").resolve().parent.parent
PACOTE = NPM_ROOT / "node_modules" / "pacote"
VERIFY = """
const pacote = require(process.argv[1]);
const [spec, registry, keys] = process.argv.slice(2);
const host = new URL(registry);
// What npm's audit signatures does with the registry's /-/npm/v1/keys (verify-signatures.js).
const pemKeys = JSON.parse(keys).map(k => ({...k,
  pemkey: `-----BEGIN PUBLIC KEY-----\n${k.key}\n-----END PUBLIC KEY-----`}));
pacote.manifest(spec, {registry, verifySignatures: true,
  [`//${host.host}${host.pathname}:_keys`]: pemKeys})
  .then(m => { console.log(JSON.stringify({ok: true, signatures: m._signatures})); })
  .catch(e => { console.log(JSON.stringify({ok: false, code: e.code, message: e.message})); });
"""


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    fake.sign_releases()
    async with fake:
        fake.add_package("upstream-signed", ["2.0.0"])
        yield fake


@pytest.fixture
async def client(make_client: MakeClient, upstream: FakeUpstream) -> TestClient:
    return await make_client(
        uplinks={"up": {"url": upstream.url, "timeout": "5s"}},
        packages={"upstream-*": {"access": "$all", "proxy": "up"}, "**": {"access": "$all", "publish": "$authenticated"}},
    )


async def keys_of(client: TestClient) -> list[dict[str, Any]]:
    response = await client.get("/-/npm/v1/keys")
    assert response.status == 200
    return list((await response.json())["keys"])


def verifies(key: dict[str, Any], message: str, signature: str) -> bool:
    public = serialization.load_der_public_key(base64.b64decode(key["key"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    try:
        public.verify(base64.b64decode(signature), message.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


async def test_versions_published_here_are_signed_with_a_listed_key_and_rotation_keeps_them_valid(
    client: TestClient, upstream: FakeUpstream,
) -> None:
    key, *uplink_keys = await keys_of(client)
    assert [k["keyid"] for k in uplink_keys] == [k["keyid"] for k in upstream.signing_keys()]
    assert key["keytype"] == key["scheme"] == "ecdsa-sha2-nistp256" and key["expires"] is None
    assert key["keyid"].startswith("SHA256:")
    token = await add_user(client, "signer")
    assert await publish(client, token, "signed-pkg", "1.0.0") == 201
    dist = (await packument(client, "signed-pkg"))["versions"]["1.0.0"]["dist"]
    [signature] = dist["signatures"]
    assert signature["keyid"] == key["keyid"]
    message = f"signed-pkg@1.0.0:{dist['integrity']}"
    assert verifies(key, message, signature["sig"])
    assert not verifies(key, message.replace("1.0.0", "1.0.1"), signature["sig"])

    db, secret = client.app[DATABASE], client.app[SECRET]
    old, new = await rotate(db, secret)
    assert old == key["keyid"]
    client.app[PACKAGES].signer = await current_key(db, secret)  # what the refresh loop does
    listed = {k["keyid"]: k for k in await keys_of(client)}
    assert set(listed) == {old, new, *(k["keyid"] for k in upstream.signing_keys())}
    assert listed[old]["expires"] and listed[new]["expires"] is None
    assert await publish(client, token, "signed-pkg", "1.1.0") == 201
    doc = await packument(client, "signed-pkg")
    newer = doc["versions"]["1.1.0"]["dist"]
    assert newer["signatures"][0]["keyid"] == new
    assert verifies(listed[new], f"signed-pkg@1.1.0:{newer['integrity']}", newer["signatures"][0]["sig"])
    assert verifies(listed[old], message, doc["versions"]["1.0.0"]["dist"]["signatures"][0]["sig"])


@pytest.mark.skipif(not PACOTE.is_dir(), reason="npm (with its pacote) is not installed")
async def test_npm_s_own_verifier_accepts_the_signature_and_refuses_a_tampered_integrity(
    client: TestClient, upstream: FakeUpstream, tmp_path: Path,
) -> None:
    token = await add_user(client, "pacote")
    assert await publish(client, token, "verified-pkg", "1.0.0") == 201
    registry = str(client.make_url("/"))
    keys = json.dumps(await keys_of(client))

    async def verify(spec: str = "verified-pkg@1.0.0") -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            "node", "-e", VERIFY, str(PACOTE), spec, registry, keys,
            stdout=asyncio.subprocess.PIPE, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        return dict(json.loads(out.decode().strip().splitlines()[-1]))

    answer = await verify()
    assert answer["ok"], answer
    # A mirrored version keeps its upstream's signature, which verifies against the merged key list.
    mirrored = await verify("upstream-signed@2.0.0")
    assert mirrored["ok"] and mirrored["signatures"][0]["keyid"] == upstream.signing_keys()[0]["keyid"], mirrored
    # Tamper with the stored integrity: the signature no longer covers it.
    packages = client.app[PACKAGES]

    def tamper(doc: dict[str, Any] | None) -> dict[str, Any]:
        assert doc is not None
        dist = doc["versions"]["1.0.0"]["dist"]
        dist["integrity"] = "sha512-" + base64.b64encode(b"\0" * 64).decode()
        return doc

    await packages.update_packument("verified-pkg", tamper)
    answer = await verify()
    assert not answer["ok"] and answer["code"] == "EINTEGRITYSIGNATURE", answer
