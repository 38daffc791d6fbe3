"""Registry state built on the RegistryDatabase contract: the secret, package entries."""

from __future__ import annotations

import logging
import secrets

from storage.base import Conflict, NotFound, RegistryDatabase

LOG = logging.getLogger(__name__)

SECRET_KEY = ("CONFIG", "SECRET")


async def ensure_secret(db: RegistryDatabase) -> str:
    """The registry secret, created once however many instances start at once."""
    pk, sk = SECRET_KEY
    for _ in range(5):
        try:
            return str((await db.get(pk, sk))["secret"])
        except NotFound:
            pass
        try:
            await db.put(pk, sk, {"secret": secrets.token_hex(32)}, if_absent=True)
            LOG.info("created the registry secret")
        except Conflict:
            LOG.debug("another instance created the secret first")
    # Every attempt lost a race against something that keeps deleting it.
    return str((await db.get(pk, sk))["secret"])
