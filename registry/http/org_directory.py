"""The organizations every request is decided with: loaded once storage is open, kept current.

`orgs_of(request)` is the snapshot (registry.domain.orgs.OrgDirectory) the
access decision reads. A poll reads the database's org stamp every ORG_POLL
seconds and reloads when another instance changed anything, so a membership
or grant change is enforced everywhere within a few seconds; a change made
here reloads at once (`reload`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from registry.domain.org_store import ORG_POLL, load_directory, stamp
from registry.domain.orgs import OrgDirectory
from registry.http.appkeys import CONFIG, DATABASE
from registry.http.background import running
from storage.base import StorageError

LOG = logging.getLogger(__name__)


@dataclass
class OrgHolder:
    directory: OrgDirectory = field(default_factory=OrgDirectory)
    stamp: str | None = None


ORGS = web.AppKey("orgs", OrgHolder)


def orgs_of(request: web.Request) -> OrgDirectory:
    return request.app[ORGS].directory


async def reload(app: web.Application) -> OrgDirectory:
    holder, db = app[ORGS], app[DATABASE]
    holder.stamp = await stamp(db)
    holder.directory = await load_directory(db, app[CONFIG].orgs.create_packages)
    return holder.directory


async def orgs_ctx(app: web.Application) -> AsyncIterator[None]:
    await reload(app)

    async def watch() -> None:
        while True:
            await asyncio.sleep(ORG_POLL)
            try:
                if await stamp(app[DATABASE]) != app[ORGS].stamp:
                    await reload(app)
            except StorageError as exc:
                LOG.warning("could not check the organizations for changes: %s", exc)
            except Exception:  # never let the watch end: this instance would stop seeing changes
                LOG.exception("could not reload the organizations")

    async with running(watch()):
        yield


def setup(app: web.Application) -> None:
    """Register after storage_ctx: the directory loads once storage is open."""
    app[ORGS] = OrgHolder()
    app.cleanup_ctx.append(orgs_ctx)
