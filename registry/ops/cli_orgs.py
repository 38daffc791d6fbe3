"""`tarhold org create|list`: the first owner of an organization, and what the registry holds.

Everything after the first owner is done with npm's own commands (`npm org
set`, `npm team create`, `npm access grant`, ...), by the org's owners and
admins. The org owns the scope of its name: `tarhold org create acme` makes
`@acme/*` the acme organization's (registry/domain/orgs.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from registry.domain.errors import RegistryError
from registry.domain.org_store import create_org, load_directory
from registry.domain.users import get_user
from registry.ops.cli_admin import fail, runner, storage_options, table
from storage.base import RegistryDatabase


async def org_create(db: RegistryDatabase, args: argparse.Namespace) -> int:
    if await get_user(db, args.owner) is None:
        return fail(f"no user {args.owner}: create it first (tarhold user add {args.owner}, or npm adduser)")
    try:
        org = await create_org(db, args.org, args.owner)
    except RegistryError as exc:
        return fail(exc.message)
    print(f"created organization {org.name} (@{org.name}/*) with {args.owner} as its owner")
    return 0


async def org_list(db: RegistryDatabase, args: argparse.Namespace) -> int:
    directory = await load_directory(db)
    rows = [
        [org.name, ", ".join(sorted(u for u, r in org.members.items() if r == "owner")),
         str(len(org.members)), ", ".join(sorted(org.teams)), str(len(org.packages()))]
        for org in sorted(directory.orgs.values(), key=lambda o: o.name)
    ]
    print(table(rows, ["org", "owners", "members", "teams", "packages"]))
    return 0


def add_org_parsers(sub: Any) -> None:
    org = sub.add_parser("org", help="organizations (create, list); members and teams: npm org, npm team")
    actions = org.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create an organization, owning @ORG/*, with its first owner")
    create.add_argument("org", help="the organization's name, which is its scope")
    create.add_argument("--owner", required=True, help="an existing user, the first owner")
    create.set_defaults(func=runner(org_create))
    listing = actions.add_parser("list", help="list organizations")
    listing.set_defaults(func=runner(org_list))
    for parser in (create, listing):
        storage_options(parser)
