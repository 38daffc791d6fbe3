"""Public URLs and npm's package-name URL forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from registry.domain.errors import NotFoundError
from registry.domain.names import validate_package_name
from registry.http.appkeys import CONFIG

SAFE_HOST = re.compile(r"[A-Za-z0-9.\-\[\]:]+")


def base_url(request: web.Request) -> str:
    """This registry's public URL for `request`, without a trailing slash.

    The config's public_url wins; otherwise X-Forwarded-Proto/X-Forwarded-Host
    (as set by the load balancer) or the request's own scheme and Host.
    """
    config = request.app[CONFIG]
    if config.public_url:
        return config.public_url
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if proto not in {"http", "https"}:
        proto = request.scheme
    host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip() or request.host
    if not SAFE_HOST.fullmatch(host):
        host = request.url.host or "localhost"
    return f"{proto}://{host}{config.url_prefix}"


@dataclass(frozen=True)
class PackagePath:
    """A request path split into the package name and what follows it."""

    name: str
    rest: tuple[str, ...]


def split_package_path(raw_path: str, prefix: str = "") -> PackagePath | None:
    """Parse `/{name}/...` from the still-encoded path.

    npm sends scoped names as `@scope%2fname`; other clients send
    `@scope/name`. Segments are decoded one by one, so an encoded slash or dot
    can never smuggle a path separator or `..` past the name validation.
    """
    # url_prefix shapes public URLs; a proxy in front may or may not strip it.
    if prefix and raw_path.startswith(prefix + "/"):
        raw_path = raw_path[len(prefix):]
    segments = raw_path.lstrip("/").split("/")
    if not segments or not segments[0]:
        return None
    first = unquote(segments[0])
    if first.startswith("@") and "/" not in first:
        if len(segments) < 2 or not segments[1]:
            return None
        name = first + "/" + unquote(segments[1])
        rest = segments[2:]
    else:
        name = first
        rest = segments[1:]
    return PackagePath(name, tuple(unquote(s) for s in rest))


# What a stored or mirrored package may be called: npm's rules for new names
# are stricter (no uppercase, no core-module names), but old packages that
# predate them must stay readable. This only keeps names path-safe.
READABLE_PART = re.compile(r"[A-Za-z0-9._~!*'()-][A-Za-z0-9._~!*'()-]*")


def is_readable_name(name: str) -> bool:
    """True for a name that can be looked up safely (scoped or not)."""
    if not name or len(name) > 214 or name.startswith((".", "_")):
        return False
    parts = name[1:].split("/") if name.startswith("@") else [name]
    if len(parts) != (2 if name.startswith("@") else 1):
        return False
    return all(
        READABLE_PART.fullmatch(part) and part not in {".", ".."} and not part.startswith(".")
        for part in parts
    )


def package_after(request: web.Request, marker: str, rest: tuple[str, ...] | None = None) -> PackagePath:
    """The package named after `marker` (`/-/package/`, `/-/stage/package/`) in the still-encoded
    path, `@scope%2fname` or `@scope/name`; NotFoundError when there is none, or when what follows
    it is not `rest` (any rest when None). The name is validated as a name one may write to."""
    raw = request.rel_url.raw_path
    start = raw.find(marker)
    parsed = split_package_path(raw[start + len(marker) - 1:]) if start >= 0 else None
    if parsed is None or (rest is not None and parsed.rest != rest):
        raise NotFoundError("not found")
    validate_package_name(parsed.name)
    return parsed
