"""`tarhold user add|list|remove|passwd` and `tarhold token create|list|revoke`.

They work directly on the database the config names (SQLite or DynamoDB),
as `tarhold serve` would open it, so they also run where no instance is up.
Exit codes: 0 ok, 1 the operation failed (no such user, name taken,
storage down), 2 usage or config (a bad grant, CIDR, duration or name).

`token create` prints the token alone on stdout (so `TOKEN=$(tarhold token
create ...)` works) and what it made on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from registry.config import Config
from registry.domain.admin import (
    add_user,
    change_user,
    issue_token,
    list_all_tokens,
    list_users,
    remove_user,
    revoke,
)
from registry.domain.errors import RegistryError
from registry.domain.rules import storage_folder
from registry.ops.settings import config_from_args
from storage.backends import build_backends
from storage.base import RegistryDatabase

CONFIG_HELP = "config.yaml (default: $TARHOLD_CONFIG, else built-in defaults)"
Command = Callable[[RegistryDatabase, argparse.Namespace], Awaitable[int]]


def fail(message: str, code: int = 1) -> int:
    print(f"tarhold: {message}", file=sys.stderr)
    return code


async def with_database(config: Config, command: Command, args: argparse.Namespace) -> int:
    """Open the configured database, run `command` on it, close it; RegistryErrors become exit codes."""
    _, database = build_backends(
        config.store.backend, path=config.store.path, section=config.store.section,
        folder=storage_folder(config.packages),
    )
    await database.open()
    try:
        return await command(database, args)
    except RegistryError as exc:
        return fail(exc.message, 2 if exc.status == 400 else 1)
    finally:
        await database.close()


def runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """An argparse `func` that loads the config like `tarhold serve` and runs `command`."""

    def run(args: argparse.Namespace) -> int:
        return asyncio.run(with_database(config_from_args(args), command, args))

    return run


def read_password(args: argparse.Namespace) -> str | None:
    """From one line of stdin (--password-stdin) or a prompt typed twice; None when they differ."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        return None
    return first


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


# -- users ---------------------------------------------------------------------


async def user_add(db: RegistryDatabase, args: argparse.Namespace) -> int:
    password = read_password(args)
    if password is None:
        return fail("the passwords do not match", 2)
    user = await add_user(db, args.name, password, email=args.email, admin=args.admin)
    print(f"created {'admin ' if user['admin'] else ''}user {user['name']}")
    return 0


async def user_list(db: RegistryDatabase, args: argparse.Namespace) -> int:
    users = await list_users(db)
    if args.json:
        print(json.dumps(users, indent=2))
        return 0
    rows = [[u["name"], "yes" if u["admin"] else "", u["email"] or "", u["created"] or ""] for u in users]
    print(table(rows, ["NAME", "ADMIN", "EMAIL", "CREATED"]))
    return 0


async def user_remove(db: RegistryDatabase, args: argparse.Namespace) -> int:
    revoked = await remove_user(db, args.name)
    print(f"removed user {args.name} and revoked {len(revoked)} token(s)")
    return 0


async def user_passwd(db: RegistryDatabase, args: argparse.Namespace) -> int:
    password = read_password(args)
    if password is None:
        return fail("the passwords do not match", 2)
    await change_user(db, args.name, password=password)
    print(f"changed the password of {args.name}")
    return 0


# -- tokens --------------------------------------------------------------------


async def token_create(db: RegistryDatabase, args: argparse.Namespace) -> int:
    token, view = await issue_token(
        db, args.user, expires=args.expires, grants=args.grant or None, readonly=args.readonly,
        cidr_whitelist=args.cidr or None, rate_limit=args.rate_limit, name=args.name,
    )
    print(token)
    parts = [", ".join(view["grants"] or ["full rights of the user"])]
    if view["readonly"]:
        parts.append("read-only")
    for label in ("cidr_whitelist", "expires", "rate_limit"):
        if view[label]:
            parts.append(f"{label} {view[label]}")
    print(f"created token {view['key']} for {view['user']}: {'; '.join(parts)}", file=sys.stderr)
    print("the token is shown only this once", file=sys.stderr)
    return 0


async def token_list(db: RegistryDatabase, args: argparse.Namespace) -> int:
    tokens = await list_all_tokens(db, args.user)
    if args.json:
        print(json.dumps(tokens, indent=2))
        return 0
    rows = [
        [
            t["user"], t["key"], t["token"], ",".join(t["grants"] or ["(full)"]),
            "yes" if t["readonly"] else "", ",".join(t["cidr_whitelist"] or []),
            t["expires"] or "", t["last_used"] or "", t["created"] or "",
        ]
        for t in tokens
    ]
    header = ["USER", "KEY", "TOKEN", "GRANTS", "READONLY", "CIDR", "EXPIRES", "LAST USED", "CREATED"]
    print(table(rows, header))
    return 0


async def token_revoke(db: RegistryDatabase, args: argparse.Namespace) -> int:
    record = await revoke(db, args.key, args.user)
    print(f"revoked token {record['key']} of {record['user']}")
    return 0


# -- parsers -------------------------------------------------------------------


def storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help=CONFIG_HELP)
    parser.add_argument("--storage", help="storage directory, overrides the config's storage")


def password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from one line of stdin (else a prompt)"
    )


def add_user_parser(sub: Any) -> None:
    user = sub.add_parser("user", help="manage users (add, list, remove, passwd)")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may use the admin API (/-/tarhold/)")
    add.add_argument("--email")
    password_option(add)
    add.set_defaults(func=runner(user_add))
    listing = actions.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(func=runner(user_list))
    remove = actions.add_parser("remove", help="delete a user and revoke all its tokens")
    remove.add_argument("name")
    remove.set_defaults(func=runner(user_remove))
    passwd = actions.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name")
    password_option(passwd)
    passwd.set_defaults(func=runner(user_passwd))
    for parser in (add, listing, remove, passwd):
        storage_options(parser)


def add_token_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="manage tokens (create, list, revoke)")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print it once")
    create.add_argument("--user", required=True, help="the user the token acts as")
    create.add_argument(
        "--grant", action="append", metavar="GRANT",
        help="repeatable: pkg:read|pkg:read+write|user:read|user:read+write = *, a package,"
        " @scope/* or ~user (none: the user's full rights)",
    )
    create.add_argument("--expires", help="lifetime: 30d, 12h, 1w, a number of days, or a date (2030-01-31)")
    create.add_argument("--cidr", action="append", metavar="CIDR", help="repeatable: allowed client networks")
    create.add_argument("--readonly", action="store_true", help="never writes")
    create.add_argument("--rate-limit", type=int, metavar="N", help="requests per minute")
    create.add_argument("--name", help="a label shown in token lists")
    create.set_defaults(func=runner(token_create))
    listing = actions.add_parser("list", help="list tokens (masked)")
    listing.add_argument("--user", help="only this user's tokens")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(func=runner(token_list))
    revoke_parser = actions.add_parser("revoke", help="revoke a token by its key")
    revoke_parser.add_argument("key", help="the key `tarhold token list` shows")
    revoke_parser.add_argument("--user", help="the token's user (else every user is searched)")
    revoke_parser.set_defaults(func=runner(token_revoke))
    for parser in (create, listing, revoke_parser):
        storage_options(parser)


def add_parsers(sub: Any) -> None:
    """Add `user` and `token` to the `tarhold` subcommands."""
    add_user_parser(sub)
    add_token_parser(sub)
