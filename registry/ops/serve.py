"""`tarhold serve`: one process, or N forked workers sharing the port.

Either way SIGTERM (or SIGINT) stops it gracefully: requests in flight
finish within `server.drain_timeout`, new ones are answered 503, and the
exit status is 0 (`registry.http.draining`, `registry.ops.workers`).
"""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from aiohttp import web

from registry.http.app import SERVER_KWARGS, create_app
from registry.http.logs import configure_logging
from registry.http.serving import run
from registry.ops.settings import config_from_args, public_base
from registry.ops.workers import STOP_MARGIN, run_workers
from storage.base import ConfigError


def cmd_serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    configure_logging(config.log)
    workers = args.workers
    if workers < 1:
        raise ConfigError("--workers", "must be at least 1")
    url = public_base(config)

    def announce(_: str) -> None:
        print(f"tarhold is serving at {url}" + (f" ({workers} workers)" if workers > 1 else ""), flush=True)
        print(f"point npm at it:  npm config set registry {url}", flush=True)
        print(f"   or per command: npm install --registry {url}", flush=True)

    def serve(index: int) -> int:
        # No log format prints the caller, thread or process: skip collecting
        # them for every record (the logging docs' "Optimization" switches);
        # the access log writes one record per request.
        logging._srcfile = None  # type: ignore[attr-defined]
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
        app = create_app(config)
        if workers > 1:
            app.on_response_prepare.append(_worker_header(index))
        run(
            app,
            host=config.host,
            port=config.port,
            ready=announce if index == 0 else None,
            reuse_port=workers > 1,
            limits=config.server,
            # A worker stops when its parent says so (SIGTERM): a Ctrl-C
            # reaches the whole process group, and the parent forwards it.
            stop_signals=(signal.SIGTERM,) if workers > 1 else (signal.SIGTERM, signal.SIGINT),
            **SERVER_KWARGS,
        )
        return 0

    if workers == 1:
        return serve(0)
    return run_workers(workers, serve, stop_timeout=config.server.drain_timeout + STOP_MARGIN)


def _worker_header(index: int) -> Any:
    """Name the worker that answered `/-/ping`, so a check can see every worker serves."""

    async def tag(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/-/ping":
            response.headers["X-Tarhold-Worker"] = str(index)

    return tag
