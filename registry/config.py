"""Load a Verdaccio-shaped config.yaml into frozen dataclasses.

`load_config()` is the one entry point: it resolves environment-variable
references, validates every key, and raises one `ConfigError` naming the key
and what is wrong. A config that loads is complete: nothing is checked later.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from storage.base import ConfigError

from registry.domain.auth_config import AuthConfig, parse_auth
from registry.domain.rules import PackageRule, parse_packages

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 4873
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Keys a Verdaccio config may carry that tarhold accepts and does not use, so
# an existing Verdaccio config.yaml starts unchanged. Anything else unknown is
# an error: a typo must not silently turn an option off.
VERDACCIO_KEYS_IGNORED = frozenset(
    {
        "plugins", "middlewares", "i18n", "notify", "experiments", "security",
        "server", "self_path", "logs", "user_agent", "http_proxy", "https_proxy",
        "no_proxy", "https", "flags", "userRateLimit", "filters", "theme",
        "url_prefix_web", "publish", "_debug", "config_path",
    }
)

LOG_LEVELS = {
    "trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
    "http": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
    "error": logging.ERROR, "fatal": logging.CRITICAL,
}

UNITS_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
UNITS_BYTES = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


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


@dataclass(frozen=True)
class StoreConfig:
    """Where package files and registry state live."""

    backend: str  # "fs" (with sqlite) or "aws-s3-storage" (with dynamodb)
    path: str | None = None  # fs: the storage directory
    section: Mapping[str, Any] = field(default_factory=dict)  # aws-s3-storage


@dataclass(frozen=True)
class LogConfig:
    format: str = "pretty"  # pretty | json
    level: int = logging.INFO


@dataclass(frozen=True)
class CacheConfig:
    """In-process caches; every instance (and worker) keeps its own."""

    # How long a worker serves a packument from memory before it reads storage
    # again: the longest a publish on one instance stays invisible on another.
    packument_ttl: float = 2.0
    # Small, hot tarballs kept in memory (bytes in all, and the largest kept;
    # 0 turns it off). One held longer than packument_ttl is checked against
    # storage (a stat, or an S3 HEAD) before it is served again, so an
    # unpublish on another worker or instance is seen within the TTL too.
    tarball_memory: int = 64 * 1024 * 1024
    tarball_max_size: int = 1024 * 1024


@dataclass(frozen=True)
class WebConfig:
    enable: bool = True
    title: str = "tarhold"


@dataclass(frozen=True)
class Config:
    host: str = "localhost"
    port: int = DEFAULT_PORT
    public_url: str | None = None  # scheme://host[:port][/prefix], no trailing slash
    url_prefix: str = ""  # path prefix the registry is mounted under
    max_body_size: int = 10 * 1024 * 1024
    store: StoreConfig = field(default_factory=lambda: StoreConfig("fs", "./storage"))
    uplinks: Mapping[str, UplinkConfig] = field(default_factory=dict)
    packages: tuple[PackageRule, ...] = ()
    auth: AuthConfig = field(default_factory=AuthConfig)
    log: LogConfig = field(default_factory=LogConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    web: WebConfig = field(default_factory=WebConfig)
    config_dir: str = "."


def load_config(path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read `path` (YAML) — or start from an empty document — and build a Config."""
    raw: Any = {}
    config_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(str(path), f"invalid YAML: {exc}") from None
        config_dir = path.resolve().parent
    if not isinstance(raw, dict):
        raise ConfigError("(top level)", "must be a mapping of options")
    raw = dict(raw)
    raw.update(overrides or {})
    return parse_config(raw, config_dir=config_dir)


def parse_config(raw: Mapping[str, Any], *, config_dir: Path | None = None) -> Config:
    """Build a Config from an already-loaded document (tests build them inline)."""
    raw = resolve_env(dict(raw))
    base = config_dir or Path.cwd()
    known = {
        "listen", "storage", "store", "uplinks", "packages", "auth", "max_body_size",
        "url_prefix", "public_url", "log", "cache", "web",
    }
    for key in raw:
        if key in VERDACCIO_KEYS_IGNORED:
            LOG.info("config: %s is a Verdaccio option tarhold does not use; ignored", key)
        elif key not in known:
            raise ConfigError(str(key), "unknown option")

    host, port = parse_listen(raw.get("listen", f"localhost:{DEFAULT_PORT}"))
    uplinks = parse_uplinks(raw.get("uplinks") or {})
    packages = parse_packages(raw.get("packages"), uplinks)
    public_url, url_prefix = parse_public_url(raw.get("public_url"), raw.get("url_prefix"))
    return Config(
        host=host,
        port=port,
        public_url=public_url,
        url_prefix=url_prefix,
        max_body_size=parse_size("max_body_size", raw.get("max_body_size", "10mb")),
        store=parse_store(raw.get("storage"), raw.get("store"), base),
        uplinks=uplinks,
        packages=packages,
        auth=parse_auth(raw.get("auth")),
        log=parse_log(raw.get("log")),
        cache=parse_cache(raw.get("cache")),
        web=parse_web(raw.get("web")),
        config_dir=str(base),
    )


def resolve_env(value: Any) -> Any:
    """A string value that names a set environment variable takes its value.

    This is what the verdaccio-aws-s3-storage plugin does for its options
    (`bucket: S3_BUCKET`), applied to every value so `url: UPSTREAM_URL` works.
    """
    if isinstance(value, dict):
        return {k: resolve_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v) for v in value]
    if isinstance(value, str) and ENV_NAME.fullmatch(value) and value in os.environ:
        return os.environ[value]
    return value


def parse_listen(value: Any) -> tuple[str, int]:
    if isinstance(value, list):
        if len(value) != 1:
            raise ConfigError("listen", "tarhold listens on one address; give one")
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return "localhost", _port("listen", value)
    if not isinstance(value, str) or not value:
        raise ConfigError("listen", "must be a port or host:port")
    text = re.sub(r"^https?://", "", value).rstrip("/")
    if text.isdigit():
        return "localhost", _port("listen", int(text))
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError("listen", f"{value!r} is not host:port")
    host = host.strip("[]") or "localhost"
    return host, _port("listen", int(port))


def _port(key: str, port: int) -> int:
    if not 0 <= port <= 65535:
        raise ConfigError(key, f"port {port} is out of range")
    return port


def parse_public_url(public_url: Any, url_prefix: Any) -> tuple[str | None, str]:
    prefix = ""
    if url_prefix is not None:
        if not isinstance(url_prefix, str):
            raise ConfigError("url_prefix", "must be a path or a URL")
        if re.match(r"^https?://", url_prefix) and public_url is None:
            public_url = url_prefix
        else:
            prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
    if public_url is None:
        return None, prefix
    if not isinstance(public_url, str) or not re.match(r"^https?://[^/\s]+", public_url):
        raise ConfigError("public_url", "must be an http(s) URL")
    return public_url.rstrip("/"), prefix


def parse_duration(key: str, value: Any) -> float:
    """`30s`, `2m`, `5m`, `1h`, `500ms`; a bare number is seconds (as in Verdaccio)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(key, "must not be negative")
        return float(value)
    if isinstance(value, str):
        total = 0.0
        parts = re.findall(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?", value)
        if parts and re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*(ms|s|m|h|d|w)?)+\s*", value):
            for number, unit in parts:
                total += float(number) * UNITS_SECONDS[unit or "s"]
            return total
    raise ConfigError(key, f"{value!r} is not a duration like 30s, 2m, 1h")


def parse_size(key: str, value: Any) -> int:
    """`10mb`, `512kb`, `1gb`; a bare number is bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?b?)\s*", value.lower())
        if match and float(match.group(1)) > 0:
            return int(float(match.group(1)) * UNITS_BYTES[_size_unit(match.group(2))])
    raise ConfigError(key, f"{value!r} is not a size like 10mb")


def _size_unit(unit: str) -> str:
    return unit if unit in UNITS_BYTES else unit + "b"


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise ConfigError(key, "must be true or false")


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a non-empty string")
    return value


def parse_uplinks(raw: Any) -> dict[str, UplinkConfig]:
    if not isinstance(raw, dict):
        raise ConfigError("uplinks", "must be a mapping of uplink names to options")
    return {str(name): parse_uplink(str(name), options) for name, options in raw.items()}


UPLINK_KEYS = {
    "url", "timeout", "maxage", "max_fails", "fail_timeout", "cache", "headers",
    "auth", "strict_ssl", "ca", "type", "agent_options",
}


def parse_uplink(name: str, raw: Any) -> UplinkConfig:
    key = f"uplinks.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a mapping with at least url")
    for option in raw:
        if option not in UPLINK_KEYS:
            raise ConfigError(f"{key}.{option}", "unknown uplink option")
    url = _str(f"{key}.url", raw.get("url"))
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
    return UplinkConfig(
        name=name,
        url=url.rstrip("/"),
        timeout=parse_duration(f"{key}.timeout", raw.get("timeout", "30s")),
        maxage=parse_duration(f"{key}.maxage", raw.get("maxage", "2m")),
        max_fails=max_fails,
        fail_timeout=parse_duration(f"{key}.fail_timeout", raw.get("fail_timeout", "5m")),
        cache=_bool(f"{key}.cache", raw.get("cache", True)),
        headers={str(k): str(v) for k, v in headers.items()},
        auth=parse_uplink_auth(key, raw.get("auth")),
        strict_ssl=_bool(f"{key}.strict_ssl", raw.get("strict_ssl", True)),
        ca=None if ca is None else _str(f"{key}.ca", ca),
        type=_str(f"{key}.type", raw.get("type", "npm")),
    )


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
        token = _str(f"{key}.token", raw["token"])
    else:
        env = raw.get("token_env")
        env_name = _str(f"{key}.token_env", "NPM_TOKEN" if env is True else env)
        if env_name not in os.environ:
            raise ConfigError(f"{key}.token_env", f"environment variable {env_name} is not set")
        token = os.environ[env_name]
    return UplinkAuth(kind, token)


def parse_store(storage: Any, store: Any, base: Path) -> StoreConfig:
    if store is not None:
        if not isinstance(store, dict) or len(store) != 1:
            raise ConfigError("store", "must name exactly one store, e.g. aws-s3-storage")
        (backend, section), = store.items()
        if backend != "aws-s3-storage":
            raise ConfigError(f"store.{backend}", "unknown store; tarhold knows aws-s3-storage")
        if not isinstance(section, dict):
            raise ConfigError(f"store.{backend}", "must be a mapping of options")
        from storage.backends import validate_s3_section

        validate_s3_section(section)
        return StoreConfig("aws-s3-storage", None, dict(section))
    if storage is not None and (not isinstance(storage, str) or not storage):
        raise ConfigError("storage", "must be a directory path")
    path = storage or "./storage"
    resolved = Path(path) if Path(path).is_absolute() else base / path
    return StoreConfig("fs", str(resolved))


def parse_log(raw: Any) -> LogConfig:
    if raw is None:
        return LogConfig()
    if isinstance(raw, list):  # Verdaccio 4's `logs: [{type, format, level}]`
        raw = raw[0] if raw else {}
    if not isinstance(raw, dict):
        raise ConfigError("log", "must be a mapping with format and level")
    fmt = str(raw.get("format", "pretty"))
    if fmt.startswith("pretty"):
        fmt = "pretty"
    if fmt not in {"pretty", "json"}:
        raise ConfigError("log.format", "must be pretty or json")
    level = str(raw.get("level", "info")).lower()
    if level not in LOG_LEVELS:
        raise ConfigError("log.level", f"must be one of {', '.join(sorted(LOG_LEVELS))}")
    return LogConfig(format=fmt, level=LOG_LEVELS[level])


def _section(key: str, raw: Any, known: set[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a mapping of options")
    for option in raw:
        if option not in known:
            raise ConfigError(f"{key}.{option}", "unknown option")
    return raw


def parse_cache(raw: Any) -> CacheConfig:
    raw = _section("cache", raw, {"packument_ttl", "tarball_memory", "tarball_max_size"})
    defaults = CacheConfig()
    return CacheConfig(
        packument_ttl=parse_duration("cache.packument_ttl", raw.get("packument_ttl", defaults.packument_ttl)),
        tarball_memory=_size_or_zero("cache.tarball_memory", raw.get("tarball_memory", defaults.tarball_memory)),
        tarball_max_size=_size_or_zero(
            "cache.tarball_max_size", raw.get("tarball_max_size", defaults.tarball_max_size)
        ),
    )


def _size_or_zero(key: str, value: Any) -> int:
    """A size, where 0 (or "0") turns the cache off."""
    if value in (0, "0"):
        return 0
    return parse_size(key, value)


def parse_web(raw: Any) -> WebConfig:
    # Verdaccio's web section has more keys (logo, primary_color, ...): accepted, unused.
    if raw is None:
        return WebConfig()
    if not isinstance(raw, dict):
        raise ConfigError("web", "must be a mapping with enable and title")
    title = raw.get("title", WebConfig.title)
    return WebConfig(
        enable=_bool("web.enable", raw.get("enable", True)),
        title=_str("web.title", title),
    )
