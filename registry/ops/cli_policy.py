"""`tarhold policy block|allow|list|rm|import-osv`: the mirror policy's run-time rules.

    tarhold policy block event-stream@3.3.6 --reason "MAL-2018-1: backdoor"
    tarhold policy block @evil --reason "hijacked scope" --expires 30d
    tarhold policy block '@acme/ui@>=2.0.0 <2.0.3' --reason "bad release" --strategy replace
    tarhold policy allow semver@7.7.3 --reason reviewed --expires 2026-07-01
    tarhold policy list [--source osv] [--json]
    tarhold policy rm r-1a2b3c4d
    tarhold policy import-osv ./advisories.zip      # or a directory of OSV *.json

TARGET is a scope (`@acme`), a package (`lodash`, `@acme/ui`, a glob like
`left-pad-*`), each optionally followed by `@RANGE` (npm's range grammar;
quote a range with spaces or `<`/`>`). The rules live in the registry
database, as the admin API writes them, so every running instance applies a
change within the policy poll. Exit codes as the other admin commands: 0 ok,
1 the operation failed (no such rule), 2 bad arguments (a bad range, name,
expiry or path).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry.domain.errors import BadRequest
from registry.domain.policy_store import (
    add_rule,
    describe,
    list_rule_items,
    remove_rule,
    rule_item,
)
from registry.ops.cli_admin import runner, storage_options, table
from registry.ops.policy_import import ImportSummary, import_advisories, read_advisories
from storage.base import RegistryDatabase

MAX_REASON_SHOWN = 60
MAX_WARNINGS_SHOWN = 20


def parse_target(text: str) -> dict[str, str]:
    """`@acme` -> scope, `lodash@^1` -> package and versions, `@acme/ui@>=2 <3` likewise; BadRequest otherwise."""
    text = text.strip()
    # The `@` that starts a range is the first one after the name's own leading `@`.
    cut = text.find("@", 1)
    name, versions = (text, "") if cut < 0 else (text[:cut], text[cut + 1:].strip())
    if cut >= 0 and not versions:
        raise BadRequest(f"{text!r}: nothing after the @; give a range like {name}@^1.2.0, or just {name}")
    if not name or any(c.isspace() for c in name) or name in ("@", "@/") or name.endswith("/"):
        raise BadRequest(f"{text!r} is not a package name or a scope like @acme")
    key = "scope" if name.startswith("@") and "/" not in name else "package"
    target = {key: name}
    if versions:
        target["versions"] = versions
    return target


def who() -> str:
    """`cli:alice`: the rule's author as the operating system names the one who ran the command."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError, ImportError):  # no user name in the environment or the password database
        return "cli"


async def add(db: RegistryDatabase, args: argparse.Namespace) -> int:
    spec = {**parse_target(args.target), "reason": args.reason, "expires": args.expires}
    if args.kind == "block":
        spec["strategy"] = args.strategy
    item = rule_item(spec, kind=args.kind, by=who(), now=datetime.now(UTC))
    await add_rule(db, item, held=len(await list_rule_items(db)))
    print(item["id"])
    print(f"{args.kind}ed {describe(item)}", file=sys.stderr)
    return 0


def shorten(text: str, size: int = MAX_REASON_SHOWN) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


async def list_rules(db: RegistryDatabase, args: argparse.Namespace) -> int:
    items = [item for item in await list_rule_items(db) if args.source is None or item.get("source") == args.source]
    for item in items:
        item.pop("ver", None)
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    rows = [
        [
            str(item.get("id", "")), str(item.get("kind", "")),
            str(item.get("package") or item.get("scope") or "*"), str(item.get("versions") or "(all)"),
            shorten(str(item.get("reason") or "")), str(item.get("expires") or ""),
            str(item.get("source", "")), str(item.get("by", "")),
        ]
        for item in items
    ]
    print(table(rows, ["ID", "KIND", "TARGET", "VERSIONS", "REASON", "EXPIRES", "SOURCE", "BY"]))
    return 0


async def rm(db: RegistryDatabase, args: argparse.Namespace) -> int:
    item = await remove_rule(db, args.id)
    print(f"removed {item.get('kind', '')} rule {item.get('id', args.id)}: {describe(item)}")
    return 0


async def import_osv(db: RegistryDatabase, args: argparse.Namespace) -> int:
    summary = ImportSummary()
    advisories = read_advisories(Path(args.path), summary)
    await import_advisories(db, advisories, now=datetime.now(UTC), summary=summary)
    for message in summary.warnings[:MAX_WARNINGS_SHOWN]:
        print(f"tarhold: warning: {message}", file=sys.stderr)
    if summary.skipped > MAX_WARNINGS_SHOWN:
        print(f"tarhold: ... and {summary.skipped - MAX_WARNINGS_SHOWN} more skipped", file=sys.stderr)
    print(
        f"{summary.read} advisories read: {summary.added} added, {summary.updated} updated,"
        f" {summary.unchanged} unchanged, {summary.removed} removed, {summary.skipped} skipped"
    )
    return 0


def add_policy_parsers(sub: Any) -> None:
    """Add `policy` (block, allow, list, rm, import-osv) to the `tarhold` subcommands."""
    policy = sub.add_parser("policy", help="mirror policy rules (block, allow, list, rm, import-osv)")
    actions = policy.add_subparsers(dest="action", required=True)
    target_help = "@scope, package or glob, optionally @RANGE: lodash@'<4.17.21', @acme/ui@^2"
    expires_help = "the rule stops then: a duration (30d, 12h) or a date (2026-12-31)"
    block = actions.add_parser("block", help="hide versions of a package or scope from every client")
    block.add_argument("target", help=target_help)
    block.add_argument("--reason", required=True, help="why; shown in `policy list` and to npm")
    block.add_argument("--expires", help=expires_help)
    block.add_argument(
        "--strategy", choices=("remove", "replace"), default="remove",
        help="remove the versions (default) or replace a blocked dist-tag target with the best allowed version",
    )
    block.set_defaults(func=runner(add), kind="block")
    allow = actions.add_parser("allow", help="exempt versions from quarantine and blocks")
    allow.add_argument("target", help=target_help)
    allow.add_argument("--reason", help="why")
    allow.add_argument("--expires", help=expires_help)
    allow.set_defaults(func=runner(add), kind="allow")
    listing = actions.add_parser("list", help="list the run-time rules (config rules are in the config)")
    listing.add_argument("--source", choices=("runtime", "osv"), help="only rules from this source")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(func=runner(list_rules))
    remove = actions.add_parser("rm", help="remove a rule by its id")
    remove.add_argument("id", help="the id `policy list` shows")
    remove.set_defaults(func=runner(rm))
    osv = actions.add_parser("import-osv", help="block the npm packages OSV advisories name (MAL-, GHSA-...)")
    osv.add_argument("path", help="a directory of OSV *.json files (read recursively), a .zip of them, or one file")
    osv.set_defaults(func=runner(import_osv))
    for parser in (block, allow, listing, remove, osv):
        storage_options(parser)
