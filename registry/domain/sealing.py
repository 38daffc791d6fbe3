"""Secrets at rest, sealed with the registry secret: AES-GCM under a key HKDF derives per purpose.

Used for what must be readable again but not from a copy of the database
alone: TOTP secrets (two_factor.py) and the registry's signing keys
(signing.py). The purpose is both the HKDF info and the AEAD associated
data, so a value sealed for one purpose does not open as another.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE = 12


def _key(registry_secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(registry_secret.encode())


def seal(text: str, registry_secret: str, purpose: bytes) -> str:
    nonce = secrets.token_bytes(NONCE)
    sealed = AESGCM(_key(registry_secret, purpose)).encrypt(nonce, text.encode(), purpose)
    return base64.b64encode(nonce + sealed).decode()


def unseal(sealed: str, registry_secret: str, purpose: bytes) -> str:
    raw = base64.b64decode(sealed)
    try:
        return AESGCM(_key(registry_secret, purpose)).decrypt(raw[:NONCE], raw[NONCE:], purpose).decode()
    except InvalidTag:
        raise ValueError("a sealed value does not open with this registry's secret") from None
