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

from registry.domain.auth_config import AuthConfig, parse_auth
from registry.domain.caches import CacheConfig, parse_cache
from registry.domain.orgs import OrgsConfig, parse_orgs
from registry.domain.policy_rules import (
    VERDACCIO_FILTER,
    PolicyConfig,
    parse_policy_section,
    parse_verdaccio_filter,
)
from registry.domain.rules import PackageRule, parse_packages
from registry.domain.trust_config import (
    TrustedPublishingConfig,
    parse_trusted_publishing,
)
from storage.backends import validate_s3_section
from storage.base import ConfigError
from storage.options import (
    ENV_NAME,
    parse_bool,
    parse_duration,
    parse_section,
    parse_size,
    parse_str,
)
from uplinks.config import UplinkConfig, parse_uplinks

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 4873

# Keys a Verdaccio config may carry that tarhold accepts and does not use, so
# an existing Verdaccio config.yaml starts unchanged. Anything else unknown is
# an error: a typo must not silently turn an option off.
VERDACCIO_KEYS_IGNORED = frozenset(
    {
        "plugins", "middlewares", "i18n", "notify", "experiments", "security",
        "self_path", "logs", "user_agent", "http_proxy", "https_proxy",
        "no_proxy", "https", "flags", "userRateLimit", "theme",
        "url_prefix_web", "publish", "_debug", "config_path",
    }
)

LOG_LEVELS = {
    "trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
    "http": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
    "error": logging.ERROR, "fatal": logging.CRITICAL,
}



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
class WebConfig:
    enable: bool = True
    title: str = "tarhold"


@dataclass(frozen=True)
class ServerConfig:
    """`server:`: how long a connection may take to ask, how many one address may hold,
    and how long a stop (SIGTERM) waits for the requests in flight."""

    header_timeout: float = 10.0  # connect -> first request's headers complete; 0: no deadline
    max_connections_per_address: int = 512  # 0: no cap (behind a load balancer, see README)
    keepalive_timeout: float = 75.0  # an idle kept-alive connection is closed after this
    # SIGTERM -> requests in flight may finish for this long, then are cut off;
    # below Kubernetes' default terminationGracePeriodSeconds (30). 0: stop at once.
    drain_timeout: float = 25.0


@dataclass(frozen=True)
class Config:
    host: str = "localhost"
    port: int = DEFAULT_PORT
    public_url: str | None = None  # scheme://host[:port][/prefix], no trailing slash
    url_prefix: str = ""  # path prefix the registry is mounted under
    max_body_size: int = 10 * 1024 * 1024
    # How far a published tarball may inflate (parse_config: 10 x max_body_size).
    max_unpacked_size: int = 100 * 1024 * 1024
    store: StoreConfig = field(default_factory=lambda: StoreConfig("fs", "./storage"))
    uplinks: Mapping[str, UplinkConfig] = field(default_factory=dict)
    packages: tuple[PackageRule, ...] = ()
    auth: AuthConfig = field(default_factory=AuthConfig)
    log: LogConfig = field(default_factory=LogConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    web: WebConfig = field(default_factory=WebConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    trusted_publishing: TrustedPublishingConfig = field(default_factory=TrustedPublishingConfig)
    orgs: OrgsConfig = field(default_factory=OrgsConfig)
    config_dir: str = "."


def load_config(
    path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read `path` (YAML) — or start from an empty document — and build a Config.

    `environ` is where values naming an environment variable are looked up
    (default: os.environ)."""
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
    return parse_config(raw, config_dir=config_dir, environ=environ)


def parse_config(
    raw: Mapping[str, Any], *, config_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build a Config from an already-loaded document (tests build them inline)."""
    raw = resolve_env(dict(raw), os.environ if environ is None else environ)
    base = config_dir or Path.cwd()
    known = {
        "listen", "storage", "store", "uplinks", "packages", "auth", "max_body_size", "max_unpacked_size",
        "url_prefix", "public_url", "log", "cache", "web", "server", "policy", "filters",
        "trusted_publishing", "orgs",
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
    max_body_size = parse_size("max_body_size", raw.get("max_body_size", "10mb"))
    return Config(
        host=host,
        port=port,
        public_url=public_url,
        url_prefix=url_prefix,
        max_body_size=max_body_size,
        max_unpacked_size=parse_size("max_unpacked_size", raw.get("max_unpacked_size", 10 * max_body_size)),
        store=parse_store(raw.get("storage"), raw.get("store"), base),
        uplinks=uplinks,
        packages=packages,
        auth=parse_auth(raw.get("auth")),
        log=parse_log(raw.get("log")),
        cache=parse_cache(raw.get("cache")),
        web=parse_web(raw.get("web")),
        server=parse_server(raw.get("server")),
        policy=parse_policy(raw.get("policy"), raw.get("filters")),
        trusted_publishing=parse_trusted_publishing(raw.get("trusted_publishing")),
        orgs=_orgs(raw.get("orgs")),
        config_dir=str(base),
    )


def _orgs(raw: Any) -> OrgsConfig:
    try:
        return parse_orgs(raw)
    except ValueError as exc:
        raise ConfigError("orgs", str(exc)) from None


def parse_policy(policy: Any, filters: Any) -> PolicyConfig:
    """tarhold's `policy:` section, or Verdaccio's package-filter plugin under `filters:`.

    Other `filters:` plugins are Verdaccio plugins tarhold does not run: ignored, logged.
    """
    if filters is not None and not isinstance(filters, dict):
        raise ConfigError("filters", "must be a mapping of filter plugins to their options")
    filters = filters or {}
    for plugin in filters:
        if plugin != VERDACCIO_FILTER:
            LOG.info("config: filters.%s is a Verdaccio plugin tarhold does not run; ignored", plugin)
    if VERDACCIO_FILTER in filters:
        if policy is not None:
            raise ConfigError(
                f"filters.{VERDACCIO_FILTER}", "give the mirror policy in policy: or in filters:, not both"
            )
        return parse_verdaccio_filter(filters[VERDACCIO_FILTER])
    return parse_policy_section(policy)


def resolve_env(value: Any, environ: Mapping[str, str]) -> Any:
    """A string value that names a set environment variable takes its value.

    This is what the verdaccio-aws-s3-storage plugin does for its options
    (`bucket: S3_BUCKET`), applied to every value so `url: UPSTREAM_URL` works.
    """
    if isinstance(value, dict):
        return {k: resolve_env(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, environ) for v in value]
    if isinstance(value, str) and ENV_NAME.fullmatch(value) and value in environ:
        return environ[value]
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


def parse_store(storage: Any, store: Any, base: Path) -> StoreConfig:
    if store is not None:
        if not isinstance(store, dict) or len(store) != 1:
            raise ConfigError("store", "must name exactly one store, e.g. aws-s3-storage")
        (backend, section), = store.items()
        if backend != "aws-s3-storage":
            raise ConfigError(f"store.{backend}", "unknown store; tarhold knows aws-s3-storage")
        if not isinstance(section, dict):
            raise ConfigError(f"store.{backend}", "must be a mapping of options")
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


def parse_web(raw: Any) -> WebConfig:
    # Verdaccio's web section has more keys (logo, primary_color, ...): accepted, unused.
    if raw is None:
        return WebConfig()
    if not isinstance(raw, dict):
        raise ConfigError("web", "must be a mapping with enable and title")
    title = raw.get("title", WebConfig.title)
    return WebConfig(
        enable=parse_bool("web.enable", raw.get("enable", True)),
        title=parse_str("web.title", title),
    )


# Verdaccio's `server:` keys tarhold accepts without using.
VERDACCIO_SERVER_KEYS = {"trustProxy", "rateLimit", "pluginPrefix", "passwordValidationRegex"}


def parse_server(raw: Any) -> ServerConfig:
    known = {"header_timeout", "max_connections_per_address", "keepalive_timeout", "keepAliveTimeout",
             "drain_timeout"}
    raw = parse_section("server", raw, known | VERDACCIO_SERVER_KEYS)
    defaults = ServerConfig()
    cap = raw.get("max_connections_per_address", defaults.max_connections_per_address)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 0:
        raise ConfigError("server.max_connections_per_address", "must be a whole number >= 0 (0: no cap)")
    # Verdaccio's keepAliveTimeout is in seconds, as a bare number is here.
    keepalive = raw.get("keepalive_timeout", raw.get("keepAliveTimeout", defaults.keepalive_timeout))
    return ServerConfig(
        header_timeout=parse_duration("server.header_timeout", raw.get("header_timeout", defaults.header_timeout)),
        max_connections_per_address=cap,
        keepalive_timeout=parse_duration("server.keepalive_timeout", keepalive),
        drain_timeout=parse_duration("server.drain_timeout", raw.get("drain_timeout", defaults.drain_timeout)),
    )
