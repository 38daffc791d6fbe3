"""Serve an app on a port, guarded against clients that hold connections without asking.

A slowloris client opens connections and trickles header lines so no request
ever starts; aiohttp waits for it as long as the keep-alive timeout allows,
and enough such connections use up the process's sockets. `ConnectionGuard`
closes a connection whose first request's headers are not complete within
`header_timeout`, and refuses a connection beyond `per_address` open ones
from one client address (behind a load balancer every connection comes from
its address: raise the cap or set 0 there, and let the balancer cut slow
clients). Later requests on a kept-alive connection are bounded by
aiohttp's keep-alive timeout.

`run` is `web.run_app` with that guard installed, and a graceful stop fit
for a rolling update: on SIGTERM or SIGINT the server drains
(`registry.http.draining`) — requests in flight finish, new ones are answered
503, bounded by `server.drain_timeout` — and only then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from registry.config import ServerConfig as ConnectionLimits
from registry.http.draining import Drain
from registry.http.fast_reads import FAST_READS

LOG = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# After the drain, how long the runner's cleanup still waits for a request
# before cancelling it: only those cut off by the drain timeout, and 503s.
CUT_OFF_GRACE = 0.5


class ConnectionGuard:
    """Counts open connections per address and closes those that never send a request in time."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: Counter[str] = Counter()
        # RequestHandler has __slots__ without __weakref__: plain containers,
        # emptied when the connection is lost.
        self._address: dict[RequestHandler, str] = {}
        self._started: set[RequestHandler] = set()
        self.refused = 0
        self.timed_out = 0

    def install(self, server: web.Server) -> None:
        """Wrap the server's connection and request hooks (its public attributes)."""
        made, lost, factory = server.connection_made, server.connection_lost, server.request_factory

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._connected(handler, transport)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self._disconnected(handler)
            lost(handler, exc)

        def request_factory(*args: Any) -> Any:
            handler = args[2]  # (message, payload, protocol, writer, task)
            if handler in self._address:
                self._started.add(handler)
            return factory(*args)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]
        server.request_factory = request_factory

    def _connected(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "?"
        cap = self.limits.max_connections_per_address
        if cap and self.open[address] >= cap:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                LOG.warning("refused a connection from %s: %d open already (server.max_connections_per_address)",
                            address, cap)
            transport.abort()
            return
        self.open[address] += 1
        self._address[handler] = address
        if self.limits.header_timeout > 0:
            asyncio.get_running_loop().call_later(
                self.limits.header_timeout, self._deadline, handler, transport
            )

    def _disconnected(self, handler: RequestHandler) -> None:
        self._started.discard(handler)
        address = self._address.pop(handler, None)
        if address is not None:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]

    def _deadline(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if handler in self._started or transport.is_closing():
            return
        self.timed_out += 1
        LOG.warning("closed a connection from %s: no complete request headers within %gs (server.header_timeout)",
                    self._address.get(handler, "?"), self.limits.header_timeout)
        transport.abort()


class ReplayingAppRunner(web.AppRunner):
    """An AppRunner whose server answers the app's remembered reads itself (FastReads)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        fast_reads = self.app.get(FAST_READS)
        if fast_reads is not None:
            fast_reads.install(server)
        return server


class GuardedAppRunner(ReplayingAppRunner):
    """A ReplayingAppRunner whose server has a ConnectionGuard and a Drain (outermost:
    replays are refused like the rest once the drain starts)."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, drain: Drain, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard
        self.drain = drain

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        self.guard.install(server)
        self.drain.install(server)
        return server


async def _serve(
    app: web.Application, host: str, port: int, *, reuse_port: bool,
    ready: Callable[[str], None] | None, limits: ConnectionLimits, stop_signals: Sequence[signal.Signals],
    **server_kwargs: Any,
) -> None:
    drain = Drain(limits.drain_timeout)
    # The runner's own signal handling would raise GracefulExit and close the
    # listening socket at once; the drain keeps it open to answer 503.
    runner = GuardedAppRunner(
        app, ConnectionGuard(limits), drain, handle_signals=False, shutdown_timeout=CUT_OFF_GRACE,
        keepalive_timeout=limits.keepalive_timeout, **server_kwargs,
    )
    loop = asyncio.get_running_loop()
    await runner.setup()
    for sig in stop_signals:
        loop.add_signal_handler(sig, drain.request_stop)
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
        await site.start()
        if ready is not None:
            ready(site.name)
        await drain.stop_requested()
        if runner.server is not None:
            await drain.drain(runner.server)
    finally:
        await runner.cleanup()
        for sig in stop_signals:  # kept until here: a second signal during cleanup must not kill us
            loop.remove_signal_handler(sig)


def run(
    app: web.Application, *, host: str, port: int, reuse_port: bool = False,
    ready: Callable[[str], None] | None = None, limits: ConnectionLimits | None = None,
    stop_signals: Sequence[signal.Signals] = STOP_SIGNALS, **server_kwargs: Any,
) -> None:
    """Serve `app` until one of `stop_signals`, then drain and shut down gracefully.

    Returns normally after a stop signal, however the drain went: the exit
    status a supervisor sees is 0 (a cut-off request is logged as a warning).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(_serve(
        app, host, port, reuse_port=reuse_port, ready=ready, limits=limits or ConnectionLimits(),
        stop_signals=stop_signals, **server_kwargs,
    ))
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, web.GracefulExit, KeyboardInterrupt):
            loop.run_until_complete(task)  # runs the runner's cleanup
        pending = asyncio.all_tasks(loop)
        for leftover in pending:
            leftover.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()
