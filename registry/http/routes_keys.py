"""`GET /-/npm/v1/keys`: the registry's public signing keys, and the signing key kept current.

The answer is what npm's `audit signatures` reads when it asks the
registry directly (`{keys: [{expires, keyid, keytype, scheme, key}]}`),
anonymous like the public registry's, followed by every uplink's keys
(`uplink_keys`), so mirrored versions that carry their upstream's
signatures verify against this registry too. `signing_ctx` loads the key that
signs now once storage is open (creating the first one), and looks again
every REFRESH seconds, so a `tarhold keys rotate` reaches every instance
well before the old key's `expires` (signing.ROTATION_GRACE).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from registry.domain.signing import REFRESH, current_key, current_keyid, public_keys
from registry.http.appkeys import DATABASE, MIRROR, PACKAGES, SECRET
from registry.http.background import running
from storage.base import StorageError
from uplinks.base import UplinkError

LOG = logging.getLogger(__name__)


# An uplink's keys are asked for at most this often (a failed ask is retried sooner).
UPLINK_KEYS_TTL = 3600.0
UPLINK_KEYS_RETRY = 60.0
MAX_UPLINK_KEYS = 32
MAX_KEY_CHARS = 2048
UPLINK_KEYS = web.AppKey("uplink_keys", dict)


def _valid_keys(data: bytes) -> list[dict[str, Any]]:
    """The well-formed keys of an uplink's `/-/npm/v1/keys` answer (bounded), in its order."""
    try:
        keys = orjson.loads(data).get("keys")
    except (orjson.JSONDecodeError, AttributeError):
        return []
    fields = ("expires", "keyid", "keytype", "scheme", "key")
    return [
        {field: key.get(field) for field in fields}
        for key in (keys if isinstance(keys, list) else [])[:MAX_UPLINK_KEYS]
        if isinstance(key, dict) and isinstance(key.get("keyid"), str) and isinstance(key.get("key"), str)
        and len(key["key"]) <= MAX_KEY_CHARS and len(key["keyid"]) <= 256
    ]


async def uplink_keys(app: web.Application) -> list[dict[str, Any]]:
    """Every uplink's signing keys, so mirrored versions' upstream signatures verify against
    this registry's key list; each uplink asked once an hour, its last good answer kept."""
    held: dict[str, tuple[float, list[dict[str, Any]]]] = app[UPLINK_KEYS]
    now = time.monotonic()
    found: list[dict[str, Any]] = []
    for name, uplink in app[MIRROR].uplinks.items():
        until, keys = held.get(name, (0.0, []))
        if until <= now:
            try:
                status, data, _ = await uplink.forward("GET", "/-/npm/v1/keys", b"", {"Accept": "application/json"})
                fresh = _valid_keys(data) if status == 200 else []
                held[name] = (now + UPLINK_KEYS_TTL, fresh) if status in (200, 404) else (now + UPLINK_KEYS_RETRY, keys)
                keys = held[name][1]
            except UplinkError as exc:
                LOG.info("could not fetch the signing keys of uplink %s: %s", name, exc)
                held[name] = (now + UPLINK_KEYS_RETRY, keys)
        found += keys
    return found


async def get_keys(request: web.Request) -> web.Response:
    keys = await public_keys(request.app[DATABASE])
    seen = {key["keyid"] for key in keys}
    for key in await uplink_keys(request.app):
        if key["keyid"] not in seen:
            seen.add(key["keyid"])
            keys.append(key)
    return web.Response(
        body=orjson.dumps({"keys": keys}), content_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


async def signing_ctx(app: web.Application) -> AsyncIterator[None]:
    packages, db, secret = app[PACKAGES], app[DATABASE], app[SECRET]
    packages.signer = await current_key(db, secret)

    async def refresh() -> None:
        while True:
            await asyncio.sleep(REFRESH)
            try:
                # One small read; the key itself is loaded (and unsealed) only when it changed.
                if packages.signer is not None and await current_keyid(db) == packages.signer.keyid:
                    continue
                packages.signer = await current_key(db, secret)
            except (StorageError, ValueError) as exc:
                LOG.warning("could not check the signing key: %s", exc)
                continue
            LOG.info("signing with key %s from now on", packages.signer.keyid)

    async with running(refresh()):
        yield


def setup(app: web.Application) -> None:
    """The route, and the key loaded after storage opens (register after storage_ctx)."""
    app[UPLINK_KEYS] = {}
    app.router.add_get("/-/npm/v1/keys", get_keys)
    app.cleanup_ctx.append(signing_ctx)
