"""`tarhold import verdaccio` and `tarhold gc`: operations on a whole storage.

Both open the storage and database the config names, as `tarhold serve`
would, so they run beside live instances. Exit codes: 0 done, 1 something
failed (the summary says what; a re-run picks up where it stopped), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from registry.config import Config
from registry.domain.htpasswd import read_htpasswd
from registry.domain.packages import Packages
from registry.domain.rules import storage_folder
from registry.http.logs import configure_logging
from registry.ops.gc import ORPHAN_GRACE, collect, parse_age
from registry.ops.import_users import import_users
from registry.ops.importer import Summary, VerdaccioImporter, read_db_json
from registry.ops.settings import config_from_args, public_base
from storage.backends import build_backends, build_package_store
from storage.base import PackageStore

CONFIG_HELP = "tarhold's config.yaml (default: $TARHOLD_CONFIG, else built-in defaults)"
S3_SOURCE_KEYS = ("region", "endpoint", "s3ForcePathStyle", "accessKeyId", "secretAccessKey", "sessionToken", "proxy")


def _config(args: argparse.Namespace) -> Config:
    config = config_from_args(args)
    configure_logging(config.log)
    return config


def source_store(config: Config, args: argparse.Namespace) -> PackageStore:
    """Verdaccio's storage directory, or its verdaccio-aws-s3-storage bucket."""
    if args.source_storage:
        return build_package_store("fs", path=args.source_storage, where="--storage")
    section: dict[str, Any] = {}
    if config.store.backend == "aws-s3-storage":
        # The same endpoint and credentials as tarhold's own bucket, unless told otherwise.
        section = {k: v for k, v in config.store.section.items() if k in S3_SOURCE_KEYS}
    section.update({"bucket": args.s3_bucket, "keyPrefix": args.s3_prefix or ""})
    if args.s3_endpoint:
        section.update({"endpoint": args.s3_endpoint, "s3ForcePathStyle": True})
    if args.s3_region:
        section["region"] = args.s3_region
    return build_package_store("aws-s3-storage", section=section, where="--s3-bucket")


async def run_import(config: Config, args: argparse.Namespace) -> Summary:
    source = source_store(config, args)
    store, database = build_backends(
        config.store.backend, path=config.store.path, section=config.store.section,
        folder=storage_folder(config.packages),
    )
    summary = Summary()
    await source.open()
    await store.open()
    await database.open()
    try:
        meta = await read_db_json(source)
        local_names = None
        if meta is not None:
            local_names = {n for n in meta.get("list") or [] if isinstance(n, str)}
            if meta.get("secret"):
                summary.notes.append(
                    "Verdaccio's token secret was not imported (tarhold keeps its own):"
                    " tokens Verdaccio issued no longer work; users log in again"
                )
        importer = VerdaccioImporter(
            source, Packages(store, database), base_url=public_base(config),
            local_names=local_names, uplinks=tuple(config.uplinks),
            skip_cached=args.skip_cached, maintainer=args.maintainer, summary=summary,
        )
        names = await importer.names()
        bar = _bar(len(names), "packages", args.quiet)
        try:
            await importer.run(names, progress=lambda: bar.update(1))
        finally:
            bar.close()
        if args.htpasswd:
            await import_users(database, read_htpasswd(Path(args.htpasswd)), summary)
    finally:
        await database.close()
        await store.close()
        await source.close()
    return summary


def cmd_import(args: argparse.Namespace) -> int:
    if bool(args.source_storage) == bool(args.s3_bucket):
        print("tarhold: give either --storage DIR or --s3-bucket BUCKET", file=sys.stderr)
        return 2
    if args.htpasswd and not Path(args.htpasswd).is_file():
        print(f"tarhold: --htpasswd {args.htpasswd}: no such file", file=sys.stderr)
        return 2
    summary = asyncio.run(run_import(_config(args), args))
    print("imported from Verdaccio:" if summary.new() else "imported from Verdaccio: nothing new")
    for line in summary.lines():
        print(f"  {line}")
    return 1 if any(outcome == "failed" and n for (_, outcome), n in summary.counts.items()) else 0


async def run_gc(config: Config, args: argparse.Namespace, older_than: float | None, orphans: float) -> int:
    store, database = build_backends(
        config.store.backend, path=config.store.path, section=config.store.section,
        folder=storage_folder(config.packages),
    )
    await store.open()
    await database.open()
    try:
        report = await collect(
            store, database, older_than=older_than, orphans_older_than=orphans, dry_run=args.dry_run
        )
    finally:
        await database.close()
        await store.close()
    verb = "would remove" if args.dry_run else "removed"
    if older_than is not None:
        files = sum(n for _, _, n in report.removed)
        print(
            f"{verb} {len(report.removed)} mirrored packages ({files} files); kept"
            f" {report.kept_local} local and {report.kept_recent} recently used; {report.failed} failed"
        )
    print(
        f"{verb} {len(report.orphans)} orphan tarballs and {len(report.leftovers)} leftovers of"
        f" unfinished writes; kept {report.young_orphans} younger than {args.orphans_older_than}"
    )
    return 1 if report.failed else 0


def cmd_gc(args: argparse.Namespace) -> int:
    ages: dict[str, float | None] = {}
    for option in ("cached_older_than", "orphans_older_than"):
        text = getattr(args, option)
        try:
            ages[option] = None if text is None else parse_age(text)
        except ValueError as exc:
            print(f"tarhold: --{option.replace('_', '-')}: {exc}", file=sys.stderr)
            return 2
    orphans = ages["orphans_older_than"]
    assert orphans is not None  # it has a default
    return asyncio.run(run_gc(_config(args), args, ages["cached_older_than"], orphans))


def _bar(total: int, unit: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=unit[:-1], desc="importing", disable=quiet or None, dynamic_ncols=True)


def add_parsers(sub: Any) -> None:
    """Register `import` and `gc` on the `tarhold` subcommand parser."""
    imp = sub.add_parser("import", help="import packages and users from another registry's storage")
    imp.add_argument("kind", choices=["verdaccio"], help="what the source is")
    where = imp.add_argument_group("source (one of)")
    where.add_argument("--storage", dest="source_storage", metavar="DIR",
                       help="Verdaccio's storage directory (its config's `storage:`)")
    where.add_argument("--s3-bucket", help="a verdaccio-aws-s3-storage bucket")
    where.add_argument("--s3-prefix", default="", help="its keyPrefix")
    where.add_argument("--s3-endpoint", help="an S3-compatible endpoint URL (path-style)")
    where.add_argument("--s3-region", help="the bucket's region")
    imp.add_argument("--htpasswd", metavar="FILE", help="Verdaccio's htpasswd file: import its users")
    imp.add_argument("--skip-cached", action="store_true",
                     help="leave out packages Verdaccio only cached from an uplink")
    imp.add_argument("--maintainer", metavar="USER",
                     help="maintainer of imported packages that name none (Verdaccio 6 records none)")
    imp.add_argument("-c", "--config", help=CONFIG_HELP)
    imp.add_argument("--into", dest="storage", metavar="DIR",
                     help="tarhold's storage directory, overrides the config's storage")
    imp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=cmd_import)

    gc = sub.add_parser(
        "gc", help="remove mirrored packages nobody requested for a while, and orphan tarballs"
    )
    gc.add_argument("--cached-older-than", metavar="AGE",
                    help="e.g. 90d, 12h, 2w: mirrored packages not requested for that long go"
                         " (without it, every mirrored package stays)")
    gc.add_argument("--orphans-older-than", metavar="AGE", default=ORPHAN_GRACE,
                    help="tarballs no packument lists, and temp files of killed writes, go once"
                         f" that old (default {ORPHAN_GRACE}: a publish in progress writes its"
                         " tarball first)")
    gc.add_argument("--dry-run", action="store_true", help="print what would go; remove nothing")
    gc.add_argument("-c", "--config", help=CONFIG_HELP)
    gc.add_argument("--storage", metavar="DIR", help="storage directory, overrides the config's storage")
    gc.set_defaults(func=cmd_gc)
