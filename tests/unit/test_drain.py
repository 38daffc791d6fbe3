"""Drain: a connection aiohttp forgets late does not hold the stop to the drain timeout."""

from __future__ import annotations

import asyncio
from typing import Any

from registry.http.draining import Drain

TIMEOUT = 3.0


class Connection:
    def force_close(self) -> None:
        pass


class Server:
    """What Drain reads of a web.Server: its open connections."""

    def __init__(self, *connections: Any) -> None:
        self.connections = list(connections)


async def test_a_connection_dropped_after_its_close_was_signalled_ends_the_drain_at_once() -> None:
    # aiohttp's Server.connection_lost removes a connection only when its handler
    # task ends, after the close woke the drain: the drain saw it still open and
    # waited again, and no second signal came (a stop took the whole timeout).
    loop = asyncio.get_running_loop()
    connection = Connection()
    server = Server(connection)
    drain = Drain(TIMEOUT)
    started = loop.time()
    draining = asyncio.ensure_future(drain.drain(server))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    drain._closed.set()  # connection_lost: the connection is still listed
    await asyncio.sleep(0.01)
    server.connections.remove(connection)  # the handler task ended: dropped, no signal
    await asyncio.wait_for(draining, TIMEOUT * 2)
    assert loop.time() - started < TIMEOUT / 2
    assert drain.cut_off == 0
