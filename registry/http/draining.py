"""Drain on SIGTERM: finish what is in flight, refuse what is new, then stop.

In a rolling update Kubernetes sends a pod SIGTERM, waits
terminationGracePeriodSeconds, then SIGKILLs it. In between, requests that
already run — a publish being stored, a tarball streaming to a slow client —
should finish, and clients and the load balancer should learn to go
elsewhere. `Drain` does that for one `web.Server`:

- it wraps the server's request handler and records each request's task.
  aiohttp runs every request in a task of its own that ends only after the
  response is sent — including a `FileResponse`, which aiohttp sends after
  the handler returned — so "in flight" means until the last byte went out,
  not until the handler returned;
- on the first stop signal it starts draining: a request that starts from
  then on is answered 503 with `Retry-After: 1` and `Connection: close`, at
  once. The listening socket stays open on purpose: a client (or the
  balancer's health check on /health or /-/ping) gets an answer it can act
  on, not a refused connection. Idle keep-alive connections are closed;
  busy ones close after their response — not with aiohttp's own
  `RequestHandler.close()`, which its shutdown uses: from then on the
  connection ignores incoming bytes, so a publish whose body is still
  arriving would never complete;
- it waits until every connection that was open then has closed (so even the
  bytes still buffered in the transport reached the socket), bounded by
  `server.drain_timeout`; past the bound it logs how many requests are cut
  off. A second stop signal ends the wait at once.

What is left afterwards — connections answered 503, requests cut off — is
the runner's ordinary cleanup, which cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

LOG = logging.getLogger(__name__)

# How often the drain looks at the open connections again while it waits.
RECHECK = 0.05
REFUSAL = json.dumps({"error": "tarhold is shutting down; retry on another instance"}).encode()


class Drain:
    """The drain state of one server: whether it drains, and the requests in flight."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.draining = False
        self.refused = 0  # requests answered 503 while draining
        self.cut_off = 0  # connections still busy when the drain timeout passed
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()
        self._closed = asyncio.Event()  # set whenever a connection closes
        # request task -> its connection; RequestHandler has no __weakref__,
        # and the done callback removes the entry.
        self._in_flight: dict[asyncio.Task[Any], RequestHandler] = {}

    def install(self, server: web.Server) -> None:
        """Wrap the server's request handler and connection-lost hook (its public attributes)."""
        handle, lost = server.request_handler, server.connection_lost

        async def request_handler(request: web.BaseRequest) -> web.StreamResponse:
            if self.draining:
                return self._refuse()
            task = asyncio.current_task()
            if task is not None:
                self._in_flight[task] = request.protocol
                task.add_done_callback(self._finished)
            response = await handle(request)
            if self.draining and not response.prepared:
                response.force_close()  # tell the client this connection ends here
            return response

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            lost(handler, exc)
            self._closed.set()

        server.request_handler = request_handler
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def request_stop(self) -> None:
        """A stop signal: the first starts the drain, a second cuts it short."""
        if self._stop.is_set():
            LOG.warning("a second stop signal: cutting the drain short")
            self._hurry.set()
        self._stop.set()

    async def stop_requested(self) -> None:
        """Return once a stop signal arrived."""
        await self._stop.wait()

    async def drain(self, server: web.Server) -> None:
        """Refuse new requests, close idle connections, wait (bounded) for busy ones to finish."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.draining = True
        busy = {handler for task, handler in self._in_flight.items() if not task.done()}
        open_then = set(server.connections)
        for connection in open_then - busy:
            connection.force_close()  # idle keep-alive: nothing to wait for
        # A busy one is closed by `_finished` once its request is done.
        LOG.info("stopping: %d request(s) in flight, waiting up to %gs for them (server.drain_timeout);"
                 " new requests are answered 503", len(busy), self.timeout)
        deadline = started + self.timeout
        while True:
            remaining = open_then.intersection(server.connections)
            left = deadline - loop.time()
            if not remaining or left <= 0 or self._hurry.is_set():
                break
            self._closed.clear()
            # Re-checked on a tick too: aiohttp drops a closed connection from
            # `server.connections` only when its handler task ends, after
            # `connection_lost` woke us, so the wake-up can come too early.
            await _first_of(self._closed.wait(), self._hurry.wait(), timeout=min(left, RECHECK))
        elapsed = loop.time() - started
        if remaining:
            self.cut_off = len(remaining)
            reason = "a second stop signal" if self._hurry.is_set() else f"server.drain_timeout is {self.timeout:g}s"
            LOG.warning("stopping: %d request(s) still in flight after %.1fs are cut off (%s)",
                        self.cut_off, elapsed, reason)
        else:
            LOG.info("drained in %.2fs; %d request(s) refused meanwhile", elapsed, self.refused)

    def _refuse(self) -> web.Response:
        self.refused += 1
        response = web.Response(
            status=503, body=REFUSAL, content_type="application/json",
            headers={"Retry-After": "1", "Connection": "close"},
        )
        response.force_close()
        return response

    def _finished(self, task: asyncio.Task[Any]) -> None:
        handler = self._in_flight.pop(task, None)
        if self.draining and handler is not None:
            # The response is written (the task ends after write_eof); closing
            # the transport still sends what it buffers before it closes.
            handler.force_close()


async def _first_of(*waits: Coroutine[Any, Any, Any], timeout: float) -> None:
    """Wait until one of the awaitables is done, or `timeout` passed; cancel the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
