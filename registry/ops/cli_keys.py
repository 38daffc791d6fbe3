"""`tarhold keys list|rotate`: the registry's signing keys (registry/domain/signing.py).

`rotate` makes a new key the signing one; every running instance picks it up
within signing.REFRESH seconds, and the old key stays listed (with its
`expires`) so the signatures it made keep verifying.
"""

from __future__ import annotations

import argparse
from typing import Any

from registry.domain.secret import ensure_secret
from registry.domain.signing import current_key, public_keys, rotate
from registry.ops.cli_admin import runner, storage_options, table
from storage.base import RegistryDatabase


async def keys_list(db: RegistryDatabase, args: argparse.Namespace) -> int:
    await current_key(db, await ensure_secret(db))  # the first key, if none was made yet
    rows = [[key["keyid"], key["keytype"], key["expires"] or "(signing)"] for key in await public_keys(db)]
    print(table(rows, ["keyid", "type", "expires"]))
    return 0


async def keys_rotate(db: RegistryDatabase, args: argparse.Namespace) -> int:
    old, new = await rotate(db, await ensure_secret(db))
    print(new)
    print(f"{new} signs from now on" + (f"; {old} stays listed for its signatures" if old else ""))
    return 0


def add_keys_parsers(sub: Any) -> None:
    keys = sub.add_parser("keys", help="the registry's signing keys (list, rotate)")
    actions = keys.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list the signing keys")
    listing.set_defaults(func=runner(keys_list))
    rotating = actions.add_parser("rotate", help="sign with a new key from now on")
    rotating.set_defaults(func=runner(keys_rotate))
    for parser in (listing, rotating):
        storage_options(parser)
