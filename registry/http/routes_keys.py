"""`GET /-/npm/v1/keys`: the registry's public signing keys, and the signing key kept current.

The answer is what npm's `audit signatures` reads when it asks the
registry directly (`{keys: [{expires, keyid, keytype, scheme, key}]}`),
anonymous like the public registry's. `signing_ctx` loads the key that
signs now once storage is open (creating the first one), and looks again
every REFRESH seconds, so a `tarhold keys rotate` reaches every instance
well before the old key's `expires` (signing.ROTATION_GRACE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from registry.domain.signing import REFRESH, current_key, public_keys
from registry.http.appkeys import DATABASE, PACKAGES, SECRET
from storage.base import StorageError

LOG = logging.getLogger(__name__)


async def get_keys(request: web.Request) -> web.Response:
    keys = await public_keys(request.app[DATABASE])
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
                key = await current_key(db, secret)
            except (StorageError, ValueError) as exc:
                LOG.warning("could not check the signing key: %s", exc)
                continue
            if packages.signer is None or key.keyid != packages.signer.keyid:
                LOG.info("signing with key %s from now on", key.keyid)
                packages.signer = key

    task = asyncio.ensure_future(refresh())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def setup(app: web.Application) -> None:
    """The route, and the key loaded after storage opens (register after storage_ctx)."""
    app.router.add_get("/-/npm/v1/keys", get_keys)
    app.cleanup_ctx.append(signing_ctx)
