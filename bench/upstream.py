"""The fake upstream in its own process: `python -m bench.upstream --port N`.

Run apart from the harness so it shares no GIL with the load generator or
the harness; prints `READY <port>` once it listens, serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from bench.corpus import Corpus, populate
from tests.support.fake_upstream import FakeUpstream


async def serve(port: int, corpus: Corpus) -> None:
    upstream = FakeUpstream(port=port)
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
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, Corpus(tree_size=args.tree_size, huge_versions=args.huge_versions)))


if __name__ == "__main__":
    sys.exit(main())
