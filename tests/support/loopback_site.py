"""Serve an aiohttp app on 127.0.0.1 for a fake server of the tests (upstream, OIDC issuer)."""

from __future__ import annotations

from aiohttp import web

HOST = "127.0.0.1"


async def listen(app: web.Application, port: int, *, shutdown_timeout: float) -> tuple[web.AppRunner, int]:
    """Start `app` on `port` of 127.0.0.1 (0: one the OS picks); its runner and the port it got.
    Nothing is left running when the listen fails."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])
