"""`tarhold import verdaccio --htpasswd FILE`: Verdaccio's users, passwords kept.

Each htpasswd hash is stored as it is (marked foreign) and rehashed to scrypt
at the user's first login; a name tarhold already has is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from registry.domain.clock import now_iso
from registry.domain.htpasswd import FOREIGN_PREFIX, HtpasswdEntry, scheme_of
from registry.domain.users import (
    PROFILE_SK,
    USERS_PK,
    get_user,
    user_pk,
    valid_user_name,
)
from registry.ops.importer import Summary
from storage.base import Conflict, RegistryDatabase


async def import_users(db: RegistryDatabase, entries: Iterable[HtpasswdEntry], summary: Summary) -> None:
    """Each htpasswd user with its hash as it is; a name tarhold already has is left alone."""
    for entry in entries:
        if not valid_user_name(entry.name):
            summary.add("users", "failed")
            summary.problems.append(f"user {entry.name!r}: not a valid tarhold user name")
            continue
        if scheme_of(entry.hash) is None:
            summary.add("users", "failed")
            summary.problems.append(f"user {entry.name}: unsupported password hash (line {entry.line})")
            continue
        existing = await get_user(db, entry.name)
        if existing is not None:
            summary.add("users", "skipped")
            if existing.get("password") != FOREIGN_PREFIX + entry.hash and not existing.get("imported"):
                summary.notes.append(f"user {entry.name} exists in tarhold already; kept tarhold's")
            continue
        now = now_iso()
        profile = {
            "name": entry.name, "password": FOREIGN_PREFIX + entry.hash, "email": None,
            "created": now, "updated": now, "admin": False, "imported": "verdaccio",
        }
        try:
            await db.put(user_pk(entry.name), PROFILE_SK, profile, if_absent=True)
        except Conflict:
            summary.add("users", "skipped")
            continue
        await db.put(USERS_PK, entry.name, {"name": entry.name, "created": now})
        summary.add("users", "imported")
