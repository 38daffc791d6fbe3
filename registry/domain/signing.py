"""Registry signatures: an ECDSA P-256 key signs every version published here, as the public registry does.

A signature is over `${name}@${version}:${integrity}` (SHA-256, DER,
base64), stored in the version's `dist.signatures` as `[{keyid, sig}]`;
`GET /-/npm/v1/keys` lists the public keys (`keyid`, `keytype`, `scheme`,
`key` as base64 DER SubjectPublicKeyInfo, `expires`), which is what
`npm audit signatures` checks against.

Keys are `CONFIG`/`SIGNKEY#{keyid}` items: the public key, the private key
sealed with the registry secret (AES-GCM, `sealing.py`), when it was made
and when it stopped signing (`expires`, set by `tarhold keys rotate`; a
key that expired still verifies the versions published before, as npm
checks a signature against the key's `expires` and the version's time).
`CONFIG`/`SIGNKEY` names the key that signs now; instances starting at
once create one key (a conditional write), and every instance reloads the
current key when it finds it changed (`Signer.refresh`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry.domain.clock import iso, now_iso
from registry.domain.sealing import seal, unseal
from storage.base import Conflict, NotFound, RegistryDatabase

LOG = logging.getLogger(__name__)

CONFIG_PK = "CONFIG"
CURRENT_SK = "SIGNKEY"
KEY_PREFIX = "SIGNKEY#"
KEYTYPE = SCHEME = "ecdsa-sha2-nistp256"
SEAL_PURPOSE = b"tarhold signing key"
# Every instance looks for a new signing key this often; a rotated key keeps signing
# validly for ROTATION_GRACE more, so no instance signs with an expired key.
REFRESH = 30.0
ROTATION_GRACE = 120.0


@dataclass(frozen=True)
class SigningKey:
    keyid: str
    private: ec.EllipticCurvePrivateKey

    def sign(self, name: str, version: str, integrity: str) -> dict[str, str]:
        """The `dist.signatures` entry for one version."""
        message = f"{name}@{version}:{integrity}".encode()
        signature = self.private.sign(message, ec.ECDSA(hashes.SHA256()))
        return {"keyid": self.keyid, "sig": base64.b64encode(signature).decode()}


def public_der(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def keyid_of(der: bytes) -> str:
    """`SHA256:<base64 digest of the public key>`, the public registry's keyid form."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def new_key_item(registry_secret: str) -> tuple[dict[str, Any], SigningKey]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = public_der(private)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keyid = keyid_of(der)
    item = {
        "keyid": keyid, "public": base64.b64encode(der).decode(),
        "private": seal(pem.decode(), registry_secret, SEAL_PURPOSE), "created": now_iso(), "expires": None,
    }
    return item, SigningKey(keyid, private)


def key_from_item(item: dict[str, Any], registry_secret: str) -> SigningKey:
    pem = unseal(str(item["private"]), registry_secret, SEAL_PURPOSE).encode()
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise ValueError(f"signing key {item.get('keyid')} is not an EC key")
    return SigningKey(str(item["keyid"]), private)


async def current_keyid(db: RegistryDatabase) -> str | None:
    """The id of the key that signs now (one small read), or None before the first key."""
    try:
        return str((await db.get(CONFIG_PK, CURRENT_SK))["keyid"])
    except NotFound:
        return None


async def current_key(db: RegistryDatabase, registry_secret: str) -> SigningKey:
    """The key that signs now, created when there is none (once, however many instances start)."""
    for _ in range(5):
        try:
            keyid = str((await db.get(CONFIG_PK, CURRENT_SK))["keyid"])
            return key_from_item(await db.get(CONFIG_PK, KEY_PREFIX + keyid), registry_secret)
        except NotFound:
            pass
        item, key = new_key_item(registry_secret)
        await db.put(CONFIG_PK, KEY_PREFIX + key.keyid, item)
        try:
            await db.put(CONFIG_PK, CURRENT_SK, {"keyid": key.keyid}, if_absent=True)
            LOG.info("created the registry signing key %s", key.keyid)
            return key
        except Conflict:
            await db.delete(CONFIG_PK, KEY_PREFIX + key.keyid)  # another instance made one first
    raise Conflict("the signing key kept changing; try again")


async def rotate(db: RegistryDatabase, registry_secret: str) -> tuple[str | None, str]:
    """A new key signs from now on (each instance within REFRESH); the old one stays listed,
    with `expires` ROTATION_GRACE from now, so what it signed still verifies. (old, new) keyids."""
    old = None
    try:
        pointer = await db.get(CONFIG_PK, CURRENT_SK)
        old = str(pointer["keyid"])
        old_item = await db.get(CONFIG_PK, KEY_PREFIX + old)
        await db.put(CONFIG_PK, KEY_PREFIX + old, {
            **{k: v for k, v in old_item.items() if k != "ver"}, "expires": iso(time.time() + ROTATION_GRACE),
        })
    except NotFound:
        pointer = None
    item, key = new_key_item(registry_secret)
    await db.put(CONFIG_PK, KEY_PREFIX + key.keyid, item)
    await db.put(CONFIG_PK, CURRENT_SK, {"keyid": key.keyid})
    LOG.warning("rotated the registry signing key: %s signs from now on (was %s)", key.keyid, old)
    return old, key.keyid


async def public_keys(db: RegistryDatabase) -> list[dict[str, Any]]:
    """Every key as `GET /-/npm/v1/keys` lists it, the signing one first."""
    keys = []
    async for sk, item in db.query(CONFIG_PK, KEY_PREFIX):
        keys.append({
            "expires": item.get("expires"), "keyid": item["keyid"], "keytype": KEYTYPE, "scheme": SCHEME,
            "key": item["public"],
        })
    keys.sort(key=lambda key: key["expires"] is not None)
    return keys
