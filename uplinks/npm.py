"""The `npm` uplink type: the npm registry protocol, as npm, Artifactory, Azure
Artifacts, GitHub Packages, Verdaccio or another tarhold speak it."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from urllib.parse import quote, urlsplit

import aiohttp

from uplinks.config import UplinkConfig

from .base import FetchedPackument, PackageNotFound, UplinkError

LOG = logging.getLogger(__name__)

ACCEPT_FULL = "application/json"
CHUNK = 256 * 1024
USER_AGENT = "tarhold"


def package_url(base: str, name: str) -> str:
    # npm's own escaping: the scope's slash travels encoded.
    return f"{base}/{quote(name, safe='@')}"


class NpmTarball:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.size = response.content_length

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK):
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise UplinkError(f"tarball stream broke: {exc!r}") from exc

    async def aclose(self) -> None:
        self._response.release()
        self._response.close()


class NpmUplink:
    """One upstream registry reached over HTTP with the app's shared ClientSession."""

    def __init__(self, config: UplinkConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.name = config.name
        self.url = config.url
        self.session = session
        self.origin = urlsplit(config.url)._replace(path="", query="", fragment="").geturl()
        self.headers = {"User-Agent": USER_AGENT, **config.headers}
        if config.auth is not None:
            scheme = "Bearer" if config.auth.type == "bearer" else "Basic"
            self.headers["Authorization"] = f"{scheme} {config.auth.token}"
        self.ssl: ssl.SSLContext | bool = True
        if not config.strict_ssl:
            self.ssl = False
        elif config.ca:
            self.ssl = ssl.create_default_context(cafile=config.ca)
        self.packument_timeout = aiohttp.ClientTimeout(total=config.timeout, connect=config.timeout)
        self.tarball_timeout = aiohttp.ClientTimeout(
            total=None, connect=config.timeout, sock_read=config.timeout
        )

    def _headers(self, via: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(self.headers)
        if via:
            headers["Via"] = via
        headers.update(extra or {})
        return headers

    async def fetch_packument(
        self, name: str, *, etag: str | None = None, last_modified: str | None = None,
        via: str = "",
    ) -> FetchedPackument:
        extra = {"Accept": ACCEPT_FULL, "Accept-Encoding": "gzip"}
        if etag:
            extra["If-None-Match"] = etag
        if last_modified:
            extra["If-Modified-Since"] = last_modified
        url = package_url(self.url, name)
        try:
            async with self.session.get(
                url, headers=self._headers(via, extra), timeout=self.packument_timeout, ssl=self.ssl
            ) as response:
                if response.status == 304:
                    return FetchedPackument(None, etag, last_modified)
                if response.status == 404:
                    raise PackageNotFound(f"{self.name} has no package {name}")
                if response.status != 200:
                    raise UplinkError(f"{self.name} answered {response.status} for {name}")
                data = await response.read()
                return FetchedPackument(
                    data, response.headers.get("ETag"), response.headers.get("Last-Modified")
                )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise UplinkError(f"{self.name} unreachable for {name}: {exc!r}") from exc

    def tarball_url(self, url: str, name: str, filename: str) -> str:
        """The URL to fetch: the document's own, unless it points off this uplink's host."""
        if url and urlsplit(url)._replace(path="", query="", fragment="").geturl() == self.origin:
            return url
        return f"{package_url(self.url, name)}/-/{filename}"

    async def open_tarball(self, url: str, *, via: str = "") -> NpmTarball:
        try:
            response = await self.session.get(
                url, headers=self._headers(via, {"Accept": "application/octet-stream"}),
                timeout=self.tarball_timeout, ssl=self.ssl, auto_decompress=False,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise UplinkError(f"{self.name} unreachable for {url}: {exc!r}") from exc
        if response.status != 200:
            response.release()
            if response.status == 404:
                raise PackageNotFound(f"{self.name} has no tarball at {url}")
            raise UplinkError(f"{self.name} answered {response.status} for a tarball")
        return NpmTarball(response)

    async def forward(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes, str]:
        try:
            async with self.session.request(
                method, f"{self.url}{path}", data=body or None,
                headers=self._headers("", headers), timeout=self.packument_timeout, ssl=self.ssl,
            ) as response:
                return (
                    response.status, await response.read(),
                    response.headers.get("Content-Type", "application/json"),
                )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise UplinkError(f"{self.name} unreachable: {exc!r}") from exc

    async def close(self) -> None:
        """The session belongs to the app; nothing of our own to release."""
