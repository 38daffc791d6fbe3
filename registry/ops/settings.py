"""What every `tarhold` command shares: the config from its arguments, the URL it serves at.

Commands that mirror (`serve`, `warm`, `check`) take `--upstream URL`; for
them a start without a config file mirrors what `registry.ops.upstream`
finds (the flag, `$TARHOLD_UPSTREAM_URL`, npm's registry). The others
(users, tokens, gc...) never ask npm: without a config they need no uplink.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from registry.config import DEFAULT_PORT, Config, load_config, parse_listen
from registry.domain.rules import default_packages
from registry.ops.upstream import (
    UPLINK_NAME,
    UPSTREAM_ENV,
    Upstream,
    UpstreamEnviron,
    find_upstream,
    points_here,
)
from storage.base import ConfigError

CONFIG_ENV = "TARHOLD_CONFIG"


@dataclass(frozen=True)
class Loaded:
    """A command's config, the file it came from, and the upstream found for it."""

    config: Config
    path: str | None = None  # the config file; None: built-in defaults
    # The upstream `--upstream`, $TARHOLD_UPSTREAM_URL or npm named: for a start
    # without a config file, or a config that says `url: TARHOLD_UPSTREAM_URL`;
    # None when nothing asked (a config with its own uplink URLs, a command that does not mirror).
    upstream: Upstream | None = None


def config_from_args(args: argparse.Namespace) -> Config:
    return load_from_args(args).config


def load_from_args(args: argparse.Namespace) -> Loaded:
    """The config `-c` or $TARHOLD_CONFIG names (else the built-in defaults), with
    `--listen` and `--storage` over it; ConfigError for anything wrong, including an
    upstream that is this server itself when it was asked for by name."""
    path = args.config or os.environ.get(CONFIG_ENV) or None
    overrides: dict[str, Any] = {}
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    if getattr(args, "storage", None):
        overrides["storage"] = args.storage
    mirrors = hasattr(args, "upstream")
    flag = getattr(args, "upstream", None)
    if path is None:
        if not mirrors:
            return Loaded(load_config(None, overrides=overrides))
        return default_mirror(flag, overrides)
    environ = UpstreamEnviron(os.environ, lambda: find_upstream(flag, os.environ))
    try:
        config = load_config(path, overrides=overrides, environ=environ)
    except ConfigError as exc:
        found = environ.upstream
        if found is not None and found.url is None and UPSTREAM_ENV in exc.problem:
            raise ConfigError(exc.key, f"{exc.problem}, and {found.refused}: set it or pass --upstream URL") from None
        raise
    found = environ.upstream
    if flag and found is None:
        raise ConfigError(
            "--upstream", f"{path} names its own uplink URLs; write `url: {UPSTREAM_ENV}` in one to take it from here"
        )
    if found is not None and found.url is not None and points_here(
        found.url, config.host, config.port, config.public_url
    ):
        raise ConfigError(
            UPSTREAM_ENV, f"{found.url} (from {found.source}) is this server itself; it cannot mirror itself:"
            " set the upstream's URL, or pass --upstream URL",
        )
    return Loaded(config, str(path), found)


def default_mirror(flag: str | None, overrides: dict[str, Any]) -> Loaded:
    """The built-in defaults, with the upstream found as uplink `upstream` that every rule proxies to."""
    host, port = parse_listen(overrides.get("listen", f"localhost:{DEFAULT_PORT}"))
    upstream = find_upstream(flag, os.environ)
    if upstream.url is not None and points_here(upstream.url, host, port, None):
        if not upstream.from_npm:  # asked for by name: a mistake to stop at, not to work around
            raise ConfigError(upstream.source, f"{upstream.url} is this server itself; it cannot mirror itself")
        upstream = Upstream(
            None, upstream.source,
            refused=f"npm's registry {upstream.url} (from {upstream.source}) is this server itself",
        )
    if upstream.url is not None:
        overrides = {
            **overrides, "uplinks": {UPLINK_NAME: {"url": upstream.url}},
            "packages": default_packages(UPLINK_NAME),
        }
    return Loaded(load_config(None, overrides=overrides), None, upstream)


def public_base(config: Config) -> str:
    if config.public_url:
        return config.public_url + "/"
    host = "127.0.0.1" if config.host in {"0.0.0.0", "::", "localhost"} else config.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}{config.url_prefix}/"
