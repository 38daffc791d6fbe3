"""The configured OIDC issuers' signing keys: discovery document, then JWK Set, cached.

`IssuerKeys.jwks(issuer)` answers from memory for KEYS_TTL; `refresh=True`
(a token names a `kid` the cached set lacks: the issuer rotated) fetches
again, but such refreshes happen at most once per REFRESH_MIN per issuer, so
tokens with made-up key ids cannot turn the registry into a request pump. One fetch at a time
per issuer; every answer bounded in size and time. The discovery document
must name the configured issuer (OpenID Connect Discovery 1.0, 4.3), and
its `jwks_uri` is used unless the config gives one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from registry.domain.oidc import TokenRefused
from registry.domain.trust_config import Issuer

LOG = logging.getLogger(__name__)

KEYS_TTL = 3600.0
REFRESH_MIN = 30.0
FETCH_TIMEOUT = 10.0
MAX_DOCUMENT = 256 * 1024


@dataclass
class _Held:
    jwks: dict[str, Any] | None = None
    fetched: float = -1e9
    refreshed: float = -1e9  # the last fetch an unknown kid asked for
    failed: float = -1e9
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class IssuerKeys:
    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def jwks(self, issuer: Issuer, *, refresh: bool = False) -> dict[str, Any]:
        held = self._held.setdefault(issuer.issuer, _Held())
        async with held.lock:
            now = time.monotonic()
            stale = held.jwks is None or now - held.fetched > KEYS_TTL
            if refresh and now - held.refreshed > REFRESH_MIN:
                stale, held.refreshed = True, now
            if stale and now - held.failed > 1.0:  # a failed fetch is not repeated within the second
                try:
                    held.jwks, held.fetched = await self._fetch(issuer), now
                except TokenRefused:
                    held.failed = now
                    if held.jwks is None:
                        raise
                    LOG.warning("keeping the keys of issuer %s: the refresh failed", issuer.name)
            if held.jwks is None:
                raise TokenRefused(f"the keys of issuer {issuer.name} could not be fetched; try again shortly")
            return held.jwks

    async def _fetch(self, issuer: Issuer) -> dict[str, Any]:
        jwks_uri = issuer.jwks_uri
        if jwks_uri is None:
            discovery = await self._get(issuer.issuer.rstrip("/") + "/.well-known/openid-configuration")
            if discovery.get("issuer") != issuer.issuer:
                raise TokenRefused(f"the discovery document of issuer {issuer.name} names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise TokenRefused(f"the discovery document of issuer {issuer.name} has no jwks_uri")
        jwks = await self._get(jwks_uri)
        if not isinstance(jwks.get("keys"), list):
            raise TokenRefused(f"the JWKS of issuer {issuer.name} has no keys")
        LOG.info("fetched %d signing keys of OIDC issuer %s", len(jwks["keys"]), issuer.name)
        return jwks

    async def _get(self, url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT))
        try:
            async with self._session.get(url, headers={"Accept": "application/json"}) as response:
                if response.status != 200:
                    raise TokenRefused(f"{url} answered {response.status}")
                body = await response.content.read(MAX_DOCUMENT + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TokenRefused(f"{url} could not be fetched: {exc or type(exc).__name__}") from None
        if len(body) > MAX_DOCUMENT:
            raise TokenRefused(f"{url} answered more than {MAX_DOCUMENT} bytes")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise TokenRefused(f"{url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise TokenRefused(f"{url} did not answer a JSON object")
        return document


ISSUER_KEYS = web.AppKey("issuer_keys", IssuerKeys)


async def issuer_keys_ctx(app: web.Application) -> AsyncIterator[None]:
    app[ISSUER_KEYS] = IssuerKeys()
    yield
    await app[ISSUER_KEYS].close()
