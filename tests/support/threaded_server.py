"""The app on a real 127.0.0.1 port, its event loop in a thread: for synchronous property tests."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from registry.config import parse_config
from registry.http.app import SERVER_KWARGS, create_app
from registry.http.serving import ReplayingAppRunner

HOST = "127.0.0.1"


class Server:
    """The app on a real port, its loop in a thread."""

    def __init__(self, storage: Path, **config: Any) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.storage = storage
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = create_app(parse_config({"storage": str(self.storage), "log": {"level": "warning"}, **self.config}))
        self.runner = ReplayingAppRunner(app, **SERVER_KWARGS)  # as `tarhold serve` runs it
        await self.runner.setup()
        site = web.TCPSite(self.runner, HOST, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(30), "the app did not start"

    def stop(self) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            connection.close()


@contextlib.contextmanager
def serving(storage: Path, **config: Any) -> Iterator[Server]:
    """A started Server on `storage`, stopped at the end."""
    running = Server(storage, **config)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def signed_up(server: Server, name: str) -> str:
    """Register `name` (npm adduser) on `server`; its token."""
    status, text = server.request(
        "PUT", f"/-/user/org.couchdb.user:{name}", {"name": name, "password": "correct horse battery"}
    )
    assert status == 201, text
    return str(json.loads(text)["token"])
