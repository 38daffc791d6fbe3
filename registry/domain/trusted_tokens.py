"""The token a trusted-publishing exchange hands out: one package, minutes, never listed.

It is an ordinary token lookup item (`TOKENHASH`, see users.py) with:
- the maintainer who made the trust configuration as its user, and one
  grant, `pkg:read+write={package}`: it can do at most what that maintainer
  could, and only to this package;
- `trusted`: the configuration it came from and the permissions it grants
  (`createPackage`, `createStagedPackage`, `manageDistTags`); anything else a
  package write does (deprecate, owners, unpublish, access, trust) and every
  account, token and admin request is refused (registry.domain.access,
  registry.http.auth.require_user);
- `expires` a few minutes ahead (trusted_publishing.token_ttl).
There is no `TOKEN#{user}` record, so `npm token list` never shows it and
its `last_used` is not kept. What earned it is kept instead: a
`TRUSTLOG#{package}`/`{created}#{key}` item with the id token's claims,
for AUDIT_KEPT seconds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.domain.clock import now_iso
from registry.domain.trust_config import Issuer
from registry.domain.trust_configs import TrustConfig
from registry.domain.users import TOKEN_BYTES, TOKENHASH_PK, storage_expiry, token_hash
from storage.base import RegistryDatabase

AUDIT_KEPT = 90 * 86400
MAX_AUDIT_CLAIMS = 48
MAX_AUDIT_VALUE = 512
TOKEN_PREFIX = "tho_"  # tells a log reader or a secret scanner what leaked: a short-lived OIDC token


def trustlog_pk(name: str) -> str:
    return f"TRUSTLOG#{name}"


@dataclass(frozen=True)
class Exchanged:
    token: str
    key: str
    created: str
    expires: int


def audit_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The claims worth keeping (scalars, bounded): who ran which job where."""
    kept: dict[str, Any] = {}
    for name, value in claims.items():
        if len(kept) >= MAX_AUDIT_CLAIMS:
            break
        if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= MAX_AUDIT_VALUE):
            kept[str(name)[:128]] = value
    return kept


async def issue(
    db: RegistryDatabase, name: str, config: TrustConfig, issuer: Issuer, claims: Mapping[str, Any],
    *, ttl: float,
) -> Exchanged:
    """Write the token's lookup item and its audit record; the token, shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    key = "oidc-" + secrets.token_hex(12)
    created = now_iso()
    expires = int(time.time() + ttl)
    trusted = {
        "package": name, "config": config.id, "type": config.type, "issuer": issuer.name,
        "permissions": list(config.permissions),
    }
    lookup = {
        "user": config.created_by, "key": key, "readonly": False, "cidr_whitelist": None,
        "grants": [f"pkg:read+write={name}"], "expires": expires, "rate_limit": None,
        "bypass_2fa": False, "trusted": trusted,
    }
    audit = {
        "key": key, "created": created, "expires_at": expires, **trusted, "user": config.created_by,
        "claims": audit_claims(claims),
    }
    await db.put(trustlog_pk(name), f"{created}#{key}", audit, expires=int(time.time()) + AUDIT_KEPT)
    await db.put(TOKENHASH_PK, token_hash(token), lookup, if_absent=True, expires=storage_expiry(expires))
    return Exchanged(token=token, key=key, created=created, expires=expires)


async def exchanges(db: RegistryDatabase, name: str) -> list[dict[str, Any]]:
    """The package's audit records of exchanges, oldest first."""
    return [item async for _, item in db.query(trustlog_pk(name))]
