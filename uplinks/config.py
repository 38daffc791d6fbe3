"""The `uplinks:` section of config.yaml: one upstream registry each, with Verdaccio's option names."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.base import ConfigError
from storage.options import ENV_NAME, parse_bool, parse_duration, parse_str


@dataclass(frozen=True)
class UplinkAuth:
    type: str  # bearer | basic
    token: str


@dataclass(frozen=True)
class UplinkConfig:
    """One upstream registry, with Verdaccio's option names."""

    name: str
    url: str
    timeout: float = 30.0
    maxage: float = 120.0
    # Verdaccio's 2 trips the breaker on two slow responses in a burst of a
    # CI wave; 5 tolerates a blip and still stops waiting on a dead upstream.
    max_fails: int = 5
    fail_timeout: float = 300.0
    cache: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: UplinkAuth | None = None
    strict_ssl: bool = True
    ca: str | None = None
    type: str = "npm"
    # Fetch the packuments a fetched packument's `latest` depends on before
    # clients ask (uplinks/prefetch.py): this many levels deep, this many at once.
    prefetch: bool = True
    prefetch_depth: int = 2
    prefetch_concurrency: int = 8


def parse_uplinks(raw: Any) -> dict[str, UplinkConfig]:
    if not isinstance(raw, dict):
        raise ConfigError("uplinks", "must be a mapping of uplink names to options")
    return {str(name): parse_uplink(str(name), options) for name, options in raw.items()}


UPLINK_KEYS = {
    "url", "timeout", "maxage", "max_fails", "fail_timeout", "cache", "headers",
    "auth", "strict_ssl", "ca", "type", "agent_options", "prefetch", "prefetch_depth",
    "prefetch_concurrency",
}
MAX_PREFETCH_DEPTH = 5
MAX_PREFETCH_CONCURRENCY = 64


def parse_uplink(name: str, raw: Any) -> UplinkConfig:
    key = f"uplinks.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a mapping with at least url")
    for option in raw:
        if option not in UPLINK_KEYS:
            raise ConfigError(f"{key}.{option}", "unknown uplink option")
    url = parse_str(f"{key}.url", raw.get("url"))
    if ENV_NAME.fullmatch(url):
        raise ConfigError(f"{key}.url", f"environment variable {url} is not set")
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{key}.url", f"{url!r} is not an http(s) URL")
    max_fails = raw.get("max_fails", 5)
    if not isinstance(max_fails, int) or isinstance(max_fails, bool) or max_fails < 0:
        raise ConfigError(f"{key}.max_fails", "must be a whole number >= 0")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, (str, int)) for v in headers.values()):
        raise ConfigError(f"{key}.headers", "must map header names to strings")
    ca = raw.get("ca")
    depth = _whole(f"{key}.prefetch_depth", raw.get("prefetch_depth", 2), 1, MAX_PREFETCH_DEPTH)
    concurrency = _whole(f"{key}.prefetch_concurrency", raw.get("prefetch_concurrency", 8), 1,
                         MAX_PREFETCH_CONCURRENCY)
    return UplinkConfig(
        name=name,
        url=url.rstrip("/"),
        timeout=parse_duration(f"{key}.timeout", raw.get("timeout", "30s")),
        maxage=parse_duration(f"{key}.maxage", raw.get("maxage", "2m")),
        max_fails=max_fails,
        fail_timeout=parse_duration(f"{key}.fail_timeout", raw.get("fail_timeout", "5m")),
        cache=parse_bool(f"{key}.cache", raw.get("cache", True)),
        headers={str(k): str(v) for k, v in headers.items()},
        auth=parse_uplink_auth(key, raw.get("auth")),
        strict_ssl=parse_bool(f"{key}.strict_ssl", raw.get("strict_ssl", True)),
        ca=None if ca is None else parse_str(f"{key}.ca", ca),
        type=parse_str(f"{key}.type", raw.get("type", "npm")),
        prefetch=parse_bool(f"{key}.prefetch", raw.get("prefetch", True)),
        prefetch_depth=depth,
        prefetch_concurrency=concurrency,
    )


def _whole(key: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(key, f"must be a whole number from {low} to {high}")
    return value


def parse_uplink_auth(key: str, raw: Any) -> UplinkAuth | None:
    if raw is None:
        return None
    key = f"{key}.auth"
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a mapping with type and token or token_env")
    kind = str(raw.get("type", "")).lower()
    if kind not in {"bearer", "basic"}:
        raise ConfigError(f"{key}.type", "must be bearer or basic")
    if "token" in raw:
        token = parse_str(f"{key}.token", raw["token"])
    else:
        env = raw.get("token_env")
        env_name = parse_str(f"{key}.token_env", "NPM_TOKEN" if env is True else env)
        if env_name not in os.environ:
            raise ConfigError(f"{key}.token_env", f"environment variable {env_name} is not set")
        token = os.environ[env_name]
    return UplinkAuth(kind, token)
