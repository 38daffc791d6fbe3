"""Checking a CI job's OIDC id token, with PyJWT: signature, issuer, audience, times.

No signature check is written here: PyJWT (with `cryptography`) verifies
against the issuer's JWK Set, which the HTTP layer fetches and caches
(registry.http.oidc_keys). What this module decides:
- the token is bounded (MAX_TOKEN bytes) and a three-part JWS;
- its algorithm is an asymmetric one (ALGORITHMS): never `none` or an HMAC,
  whose "key" would be the issuer's public key;
- the key is the JWKS entry its `kid` names (or the only one, when the
  token has no `kid` and the set has one key), and that key's `alg`, when
  it has one, is the token's;
- `iss` is exactly the configured issuer, `aud` one of the audiences, and
  `exp`, `iat` (required) and `nbf` hold with `leeway` seconds of skew.
Every refusal is a TokenRefused whose message says which check failed: the
log line an operator needs, and the 401's text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

MAX_TOKEN = 16 * 1024
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MAX_KEYS = 64


class TokenRefused(Exception):
    """The id token does not prove anything; the message says which check failed."""


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, claims) of a token, unverified: only to find its issuer and key."""
    if not token or len(token) > MAX_TOKEN or token.count(".") != 2:
        raise TokenRefused("malformed id token: not a JWS of at most 16 KiB")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"malformed id token: {exc}") from None
    if not isinstance(claims.get("iss"), str):
        raise TokenRefused("the id token has no issuer (iss)")
    return header, claims


def key_ids(jwks: Mapping[str, Any]) -> set[str]:
    keys = jwks.get("keys")
    return {str(k.get("kid")) for k in keys if isinstance(k, dict)} if isinstance(keys, list) else set()


def signing_key(header: Mapping[str, Any], jwks: Mapping[str, Any]) -> jwt.PyJWK:
    """The key of `jwks` the token's header names; TokenRefused when the set has none."""
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise TokenRefused(f"id token algorithm {alg!r} is not accepted (use {', '.join(ALGORITHMS)})")
    raw = jwks.get("keys")
    candidates = [k for k in raw if isinstance(k, dict)][:MAX_KEYS] if isinstance(raw, list) else []
    kid = header.get("kid")
    if kid is not None:
        candidates = [k for k in candidates if k.get("kid") == kid]
    elif len(candidates) != 1:
        candidates = []
    if not candidates:
        raise TokenRefused(f"the issuer's JWKS has no key {kid!r}")
    data = candidates[0]
    if data.get("alg") not in (None, alg):
        raise TokenRefused(f"key {kid!r} is for {data.get('alg')}, the token says {alg}")
    try:
        return jwt.PyJWK(data, algorithm=alg)
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"key {kid!r} of the issuer's JWKS is unusable: {exc}") from None


def verify(
    token: str, jwks: Mapping[str, Any], *, issuer: str, audiences: Sequence[str], leeway: float,
    now: float | None = None,
) -> dict[str, Any]:
    """The verified claims of `token`; TokenRefused naming the failed check otherwise."""
    header, _ = peek(token)
    key = signing_key(header, jwks)
    try:
        claims = jwt.decode(
            token, key, algorithms=[header["alg"]], audience=list(audiences), issuer=issuer,
            leeway=leeway, options={"require": ["exp", "iat", "iss", "aud"], "verify_iat": True},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("the id token has expired (exp)") from None
    except jwt.InvalidAudienceError:
        raise TokenRefused(f"the id token's audience (aud) is not {' or '.join(audiences)}") from None
    except jwt.InvalidIssuerError:
        raise TokenRefused("the id token's issuer (iss) is not the configured one") from None
    except jwt.ImmatureSignatureError:
        raise TokenRefused("the id token is not valid yet (nbf or iat in the future)") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused("the id token's signature does not verify with the issuer's key") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRefused(f"the id token has no {exc.claim} claim") from None
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"invalid id token: {exc}") from None
    issued = claims.get("iat")
    if isinstance(issued, (int, float)) and issued > (now or time.time()) + leeway:
        raise TokenRefused("the id token was issued in the future (iat)")
    return claims
