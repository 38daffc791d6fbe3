"""The Uplink protocol: what tarhold asks of an upstream registry.

Caching, freshness, failure tracking and coalescing live above this protocol
(`uplinks/mirror.py`), written once for every uplink type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class UplinkError(Exception):
    """The uplink could not answer: connection, timeout, 5xx, or a bad document."""


class PackageNotFound(Exception):
    """The uplink answered that it has no such package (or tarball)."""


@dataclass
class FetchedPackument:
    """An uplink's answer to a (conditional) packument request."""

    data: bytes | None  # None: 304, the validator we sent still holds
    etag: str | None = None
    last_modified: str | None = None

    def take(self) -> bytes | None:
        """The body, handed over: this answer forgets it, so a multi-MB document
        is held by nobody but its parser (which drops it for the text it parses)."""
        data, self.data = self.data, None
        return data


class UpstreamTarball(Protocol):
    """An open tarball response: its size when the uplink said it, and its bytes."""

    size: int | None

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Uplink(Protocol):
    """An upstream registry; built per config entry by its `type:` (see `uplinks.mirror`)."""

    name: str

    async def fetch_packument(
        self, name: str, *, etag: str | None = None, last_modified: str | None = None,
        via: str = "",
    ) -> FetchedPackument:
        """Raises PackageNotFound on 404, UplinkError on anything else that is not an answer."""

    def tarball_url(self, url: str, name: str, filename: str) -> str:
        """The URL to fetch `filename` of `name` from, given the packument's `dist.tarball` URL."""

    async def open_tarball(self, url: str, *, via: str = "") -> UpstreamTarball:
        """Raises PackageNotFound on 404, UplinkError otherwise."""

    async def forward(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes, str]:
        """Pass a request through (search, audit): status, body, content type."""

    async def close(self) -> None: ...


def describe(uplink: Any) -> str:
    return f"{uplink.name} ({getattr(uplink, 'url', '?')})"
