"""What every `tarhold` command shares: the config from its arguments, the URL it serves at."""

from __future__ import annotations

import argparse
import os

from registry.config import Config, load_config

CONFIG_ENV = "TARHOLD_CONFIG"


def config_from_args(args: argparse.Namespace) -> Config:
    path = args.config or os.environ.get(CONFIG_ENV) or None
    overrides = {}
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    if getattr(args, "storage", None):
        overrides["storage"] = args.storage
    return load_config(path, overrides=overrides)


def public_base(config: Config) -> str:
    if config.public_url:
        return config.public_url + "/"
    host = "127.0.0.1" if config.host in {"0.0.0.0", "::", "localhost"} else config.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}{config.url_prefix}/"
