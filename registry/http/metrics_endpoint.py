"""GET /-/metrics: the Prometheus text format, merged over workers when there are several.

With workers (`PROMETHEUS_MULTIPROC_DIR` set), every worker writes its values
to files in that directory and the scrape merges them; each worker also moves
its request counts there every FLUSH_INTERVAL seconds (`flush_ctx`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import prometheus_client
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from registry.http.appkeys import MIRROR
from registry.http.metrics import MULTIPROC_ENV, metrics

FLUSH_INTERVAL = 1.0  # seconds, with workers (see RequestBatch)


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /-/metrics: the Prometheus text format, merged over workers when there are several."""
    mirror = request.app.get(MIRROR)
    if mirror is not None:
        # An open circuit turns half-open with time alone, not on a call.
        for breaker in mirror.breakers.values():
            breaker.report_state()
    metrics().batch.flush(scraping=True)
    body = generate_latest(collector_registry())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def collector_registry(environ: Mapping[str, str] = os.environ) -> Any:
    """What to render: every worker's files in multiprocess mode, else this process's registry."""
    metrics()
    if environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return prometheus_client.REGISTRY


def setup(app: web.Application) -> None:
    """Register GET /-/metrics (before the package catch-all), and the flushes workers need."""
    app.router.add_get("/-/metrics", metrics_handler)
    app.cleanup_ctx.append(flush_ctx)


async def flush_ctx(app: web.Application) -> AsyncIterator[None]:
    """With workers, move this worker's request counts into the shared files every second."""
    if not os.environ.get(MULTIPROC_ENV):
        yield
        return
    batch = metrics().batch

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            batch.flush()

    task = asyncio.create_task(flush_forever())
    try:
        yield
    finally:
        task.cancel()
        batch.flush()
