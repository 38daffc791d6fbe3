"""The soak run's fake upstream in its own process: `python -m bench.soak_upstream --port N`.

Everything it serves is generated (`tests.support.fake_upstream_docs`), never
captured from a real registry:

- `TREES` dependency trees of `TREE_SIZE` packages each (nested modules, a
  shared leaf under different ranges, a scoped package, a CLI with a bin);
- `LIBS` flat packages that get a new release every `--release-every`
  seconds, one at a time, so the mirror keeps revalidating and mirroring;
- `BIG`, one package with a few hundred heavy manifests (~0.5 MB packument).

Prints `READY <port>` once it listens on 127.0.0.1; serves until SIGTERM.
The requests the fake records are forgotten at every release: over a long
run they would be the only thing growing in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys

from tests.support.fake_upstream import FakeUpstream
from tests.support.fake_upstream_sets import large_versions

TREES = ("soak-tree-a", "soak-tree-b", "soak-tree-c")
TREE_SIZE = 24
LIBS = tuple(f"soak-lib-{index}" for index in range(10))
LIB_FIRST_VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
BIG = "soak-big"
BIG_VERSIONS = 300
RELEASE_EVERY = 20.0  # seconds


def populate(upstream: FakeUpstream) -> None:
    """Add the trees, the libs and the big package."""
    for root in TREES:
        upstream.add_tree(root, TREE_SIZE)
    for lib in LIBS:
        upstream.add_package(lib, {version: {"description": f"{lib}, released often"}
                                   for version in LIB_FIRST_VERSIONS})
    upstream.add_package(BIG, large_versions(BIG, BIG_VERSIONS))


async def release_now_and_then(upstream: FakeUpstream, every: float, stop: asyncio.Event) -> None:
    """A new minor of one lib every `every` seconds, until `stop` is set."""
    rng = random.Random(15)
    minors = dict.fromkeys(LIBS, len(LIB_FIRST_VERSIONS))
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            lib = rng.choice(LIBS)
            upstream.add_package(lib, {f"1.{minors[lib]}.0": {"description": f"{lib}, released often"}})
            minors[lib] += 1
            upstream.requests.clear()


async def serve(port: int, release_every: float) -> None:
    upstream = FakeUpstream(port=port)
    populate(upstream)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with upstream:
        print(f"READY {upstream.port}", flush=True)
        await release_now_and_then(upstream, release_every, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--release-every", type=float, default=RELEASE_EVERY)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.release_every))


if __name__ == "__main__":
    sys.exit(main())
