"""`tarhold serve`: one process, or N forked workers sharing the port.

Either way SIGTERM (or SIGINT) stops it gracefully: requests in flight
finish within `server.drain_timeout`, new ones are answered 503, and the
exit status is 0 (`registry.http.draining`, `registry.ops.workers`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
from typing import Any

from aiohttp import web

from registry.http.app import SERVER_KWARGS, create_app
from registry.http.logs import configure_logging
from registry.http.serving import run
from registry.ops.banner import banner
from registry.ops.settings import load_from_args, public_base
from registry.ops.workers import STOP_MARGIN, run_workers
from storage.base import ConfigError
from storage.heap import map_large_blocks


def cmd_serve(args: argparse.Namespace) -> int:
    workers = args.workers
    if workers < 1:
        raise ConfigError("--workers", "must be at least 1")
    loaded = load_from_args(args)
    config = loaded.config
    configure_logging(config.log)
    lines = banner(loaded, public_base(config), workers=workers, program=program_name())

    def announce(_: str) -> None:
        print("\n".join(lines), flush=True)

    def serve(index: int) -> int:
        # No log format prints the caller, thread or process: skip collecting
        # them for every record (the logging docs' "Optimization" switches);
        # the access log writes one record per request.
        logging._srcfile = None  # type: ignore[attr-defined]
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
        # Multi-MB buffers (a large packument's bytes and renderings) go back to the
        # OS when freed, instead of leaving holes in the heap (storage.heap).
        map_large_blocks()
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


def program_name() -> str:
    """How to run `tarhold` again from here: its bare name when that is on PATH, else as it was run."""
    ran = sys.argv[0] if sys.argv and sys.argv[0] else "tarhold"
    found = shutil.which("tarhold")
    if os.path.basename(ran) != "tarhold" or (found and os.path.realpath(found) == os.path.realpath(ran)):
        return "tarhold"
    return ran


def _worker_header(index: int) -> Any:
    """Name the worker that answered `/-/ping`, so a check can see every worker serves."""

    async def tag(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/-/ping":
            response.headers["X-Tarhold-Worker"] = str(index)

    return tag
