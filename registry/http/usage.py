"""The HTTP side of last-read stamps: one recorder per app, drained at shutdown."""

from __future__ import annotations

from aiohttp import web

from registry.domain.usage import AccessRecorder
from storage.base import RegistryDatabase

ACCESS = web.AppKey("access", AccessRecorder)


def note_access(request: web.Request, name: str) -> None:
    """The one-line hook of the packument and tarball handlers."""
    recorder = request.app.get(ACCESS)
    if recorder is not None:
        recorder.note(name)


def setup(app: web.Application, db: RegistryDatabase) -> None:
    """Give the app a recorder; pending writes get a few seconds at shutdown."""
    app[ACCESS] = AccessRecorder(db)

    async def drain(app: web.Application) -> None:
        await app[ACCESS].drain()

    app.on_shutdown.append(drain)
