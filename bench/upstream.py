"""The fake upstream in its own process: `python -m bench.upstream --port N`.

Run apart from the harness so it shares no GIL with the load generator or
the harness; prints `READY <port>` once it listens, serves until SIGTERM.

`--latency SECONDS` holds every answer that long before it starts, as a
registry across a network does (a real upstream is not on loopback), so
the cold rows measure what a mirror does about round trips.
`GET /-/bench/requests` (never delayed, never counted) answers how many
requests of each kind (packument, tarball, ...) it has received so far.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections import Counter

from aiohttp import web

from bench.corpus import Corpus, populate
from tests.support.fake_upstream import FakeUpstream

COUNTS_PATH = "/-/bench/requests"


class BenchUpstream(FakeUpstream):
    """The fake upstream, with a latency on every answer and a running count of requests by kind."""

    def __init__(self, *, port: int, latency: float) -> None:
        super().__init__(port=port)
        self.latency = latency
        self.totals: Counter[str] = Counter()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == COUNTS_PATH:
            return web.json_response(self.counts())
        if self.latency and request.path != "/-/ping":
            await asyncio.sleep(self.latency)
        return await super()._handle(request)

    def counts(self) -> dict[str, int]:
        """Requests by kind so far; the recorded requests are folded in and forgotten (memory stays flat)."""
        done = [request for request in self.requests if request.status is not None]
        self.totals.update(request.kind for request in done)
        self.requests[:] = [request for request in self.requests if request.status is None]
        return dict(self.totals)


async def serve(port: int, corpus: Corpus, latency: float) -> None:
    upstream = BenchUpstream(port=port, latency=latency)
    populate(upstream, corpus)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with upstream:
        # Render every document once now, not under the first request's timeout.
        for name in list(upstream._packages):  # noqa: SLF001 - our own fake
            upstream.packument_bytes(name)
        print(f"READY {upstream.port}", flush=True)
        await stop.wait()
        upstream.requests.clear()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tree-size", type=int, default=Corpus.tree_size)
    parser.add_argument("--huge-versions", type=int, default=Corpus.huge_versions)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    corpus = Corpus(tree_size=args.tree_size, huge_versions=args.huge_versions)
    asyncio.run(serve(args.port, corpus, args.latency))


if __name__ == "__main__":
    sys.exit(main())
