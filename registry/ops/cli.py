"""The `tarhold` command: serve, init, warm, user, token."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from registry.config import Config, load_config
from registry.domain.rules import storage_folder
from registry.http.logs import configure_logging
from registry.ops.cli_admin import add_parsers as add_admin_parsers
from registry.ops.cli_ops import add_parsers as add_ops_parsers
from storage.backends import build_backends
from storage.base import ConfigError, StorageError

LOG = logging.getLogger(__name__)

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


def cmd_serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    configure_logging(config.log)
    workers = args.workers
    if workers < 1:
        raise ConfigError("--workers", "must be at least 1")
    url = public_base(config)

    def announce(_: str) -> None:
        print(f"tarhold is serving at {url}" + (f" ({workers} workers)" if workers > 1 else ""), flush=True)
        print(f"point npm at it:  npm config set registry {url}", flush=True)
        print(f"   or per command: npm install --registry {url}", flush=True)

    def serve(index: int) -> int:
        # Imported here, not at the top: registry.http.app imports prometheus_client,
        # which must see PROMETHEUS_MULTIPROC_DIR (set by run_workers) first.
        from registry.http.app import SERVER_KWARGS, create_app

        # No log format prints the caller, thread or process: skip collecting
        # them for every record (the logging docs' "Optimization" switches);
        # the access log writes one record per request.
        logging._srcfile = None  # type: ignore[attr-defined]
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
        app = create_app(config)
        if workers > 1:
            app.on_response_prepare.append(_worker_header(index))
        web.run_app(
            app,
            host=config.host,
            port=config.port,
            print=announce if index == 0 else None,
            handle_signals=True,
            reuse_port=workers > 1,
            **SERVER_KWARGS,  # type: ignore[arg-type]
            shutdown_timeout=10,
        )
        return 0

    if workers == 1:
        return serve(0)
    from registry.ops.workers import run_workers

    return run_workers(workers, serve)


def _worker_header(index: int) -> Any:
    """Name the worker that answered `/-/ping`, so a check can see every worker serves."""

    async def tag(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/-/ping":
            response.headers["X-Tarhold-Worker"] = str(index)

    return tag


async def _init(config: Config) -> int:
    store, database = build_backends(
        config.store.backend,
        path=config.store.path,
        section=config.store.section,
        folder=storage_folder(config.packages),
    )
    if config.store.backend == "fs":
        await store.open()
        await database.open()
        await database.close()
        print(f"embedded storage ready in {config.store.path} (nothing else to create)")
        return 0
    from storage.dynamodb import DynamoRegistryDatabase
    from storage.provision import ensure_bucket, ensure_table, iam_policy
    from storage.s3 import S3PackageStore

    assert isinstance(store, S3PackageStore) and isinstance(database, DynamoRegistryDatabase)
    await store.open()
    await database.open()
    try:
        created = await ensure_bucket(store)
        print(f"bucket {store.bucket}: {'created' if created else 'already there'}")
        created = await ensure_table(database)
        print(f"table {database.table}: {'created' if created else 'already there'}")
    finally:
        await database.close()
        await store.close()
    policy = iam_policy(
        bucket=store.bucket,
        key_prefix=store.key_prefix,
        table_name=database.table,
        region=database.region,
        tarball_acl=bool(store.tarball_acl),
    )
    print("minimal IAM policy for the instances that run `tarhold serve`:")
    print(json.dumps(policy, indent=2))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    configure_logging(config.log)
    return asyncio.run(_init(config))


def cmd_warm(args: argparse.Namespace) -> int:
    from pathlib import Path

    from registry.ops.warm import read_lockfile, warm

    config = config_from_args(args)
    configure_logging(config.log)
    try:
        wanted = read_lockfile(Path(args.lockfile))
    except (OSError, ValueError) as exc:
        print(f"tarhold: {args.lockfile}: {exc}", file=sys.stderr)
        return 2
    summary = asyncio.run(warm(config, wanted, concurrency=args.concurrency, progress=not args.quiet))
    print(
        f"{len(wanted)} package versions: {summary['fetched']} fetched,"
        f" {summary['cached']} already cached, {summary['failed']} failed"
    )
    return 1 if summary["failed"] else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tarhold", description="npm-compatible package registry")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the registry")
    serve.add_argument("-c", "--config", help=f"config.yaml (default: ${CONFIG_ENV}, else built-in defaults)")
    serve.add_argument("--listen", help="host:port, overrides the config's listen")
    serve.add_argument("--storage", help="storage directory, overrides the config's storage")
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="worker processes sharing the port with SO_REUSEPORT (default 1; about one per core)",
    )
    serve.set_defaults(func=cmd_serve)

    init = sub.add_parser("init", help="create the S3 bucket and DynamoDB table the config names")
    init.add_argument("-c", "--config", help=f"config.yaml (default: ${CONFIG_ENV})")
    init.add_argument("--storage", help="storage directory, overrides the config's storage")
    init.set_defaults(func=cmd_init)

    warm = sub.add_parser("warm", help="pre-fetch every package a lockfile names into storage")
    warm.add_argument("lockfile", help="package-lock.json, pnpm-lock.yaml or yarn.lock")
    warm.add_argument("-c", "--config", help=f"config.yaml (default: ${CONFIG_ENV})")
    warm.add_argument("--storage", help="storage directory, overrides the config's storage")
    warm.add_argument("--concurrency", type=int, default=16, help="parallel fetches (default 16)")
    warm.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    warm.set_defaults(func=cmd_warm)

    add_admin_parsers(sub)  # user add|list|remove|passwd, token create|list|revoke
    add_ops_parsers(sub)  # import verdaccio, gc
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
