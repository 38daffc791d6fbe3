"""The `tarhold` command: serve, check, init, warm, user, token, import, gc, policy, keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from registry.http.logs import configure_logging
from registry.ops.check import add_check_parser
from registry.ops.cli_admin import add_parsers as add_admin_parsers
from registry.ops.cli_keys import add_keys_parsers
from registry.ops.cli_ops import add_parsers as add_ops_parsers
from registry.ops.cli_orgs import add_org_parsers
from registry.ops.cli_policy import add_policy_parsers
from registry.ops.init import cmd_init
from registry.ops.serve import cmd_serve
from registry.ops.settings import CONFIG_ENV, config_from_args
from registry.ops.upstream import UPSTREAM_ENV
from registry.ops.warm import read_lockfile, warm
from storage.base import ConfigError, StorageError

LOG = logging.getLogger(__name__)

UPSTREAM_HELP = (
    f"registry to mirror (as ${UPSTREAM_ENV}); without either and without a config, npm's"
    f" configured registry (`npm config get registry`); a config takes it where it says `url: {UPSTREAM_ENV}`"
)


def cmd_warm(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    configure_logging(config.log)
    try:
        wanted = read_lockfile(Path(args.lockfile))
    except (OSError, ValueError) as exc:
        print(f"tarhold: {args.lockfile}: {exc}", file=sys.stderr)
        return 2
    summary = asyncio.run(warm(config, wanted, concurrency=args.concurrency, progress=not args.quiet))
    for item, message in sorted(summary.skipped.items()):
        print(f"skipped {item.name}@{item.version}: {message}")
    print(
        f"{len(wanted)} package versions: {summary['fetched']} fetched,"
        f" {summary['cached']} already cached, {summary['failed']} failed,"
        f" {summary['skipped']} skipped by policy"
    )
    return 1 if summary["failed"] else 0  # a version the policy hides is not a failure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tarhold", description="npm-compatible package registry")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the registry")
    serve.add_argument("-c", "--config", help=f"config.yaml (default: ${CONFIG_ENV}, else built-in defaults)")
    serve.add_argument("--listen", help="host:port, overrides the config's listen")
    serve.add_argument("--storage", help="storage directory, overrides the config's storage")
    serve.add_argument("--upstream", metavar="URL", help=UPSTREAM_HELP)
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="worker processes sharing the port with SO_REUSEPORT (default 1; about one per core)",
    )
    serve.set_defaults(func=cmd_serve)
    add_check_parser(sub)

    init = sub.add_parser("init", help="create the S3 bucket and DynamoDB table the config names")
    init.add_argument("-c", "--config", help=f"config.yaml (default: ${CONFIG_ENV})")
    init.add_argument("--storage", help="storage directory, overrides the config's storage")
    init.set_defaults(func=cmd_init)

    warm = sub.add_parser("warm", help="pre-fetch every package a lockfile names into storage")
    warm.add_argument("lockfile", help="package-lock.json, pnpm-lock.yaml or yarn.lock")
    warm.add_argument("-c", "--config", help=f"config.yaml (default: ${CONFIG_ENV})")
    warm.add_argument("--storage", help="storage directory, overrides the config's storage")
    warm.add_argument("--upstream", metavar="URL", help=UPSTREAM_HELP)
    warm.add_argument("--concurrency", type=int, default=16, help="parallel fetches (default 16)")
    warm.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    warm.set_defaults(func=cmd_warm)

    add_admin_parsers(sub)  # user add|list|remove|passwd, token create|list|revoke
    add_ops_parsers(sub)  # import verdaccio, gc
    add_policy_parsers(sub)  # policy block|allow|list|rm|import-osv
    add_keys_parsers(sub)  # keys list|rotate
    add_org_parsers(sub)  # org create|list
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"tarhold: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"tarhold: storage: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
