"""Search and the web front page with 10,000 packages in the list.

    .venv/bin/python -m bench.search_scale [COUNT]

Fills the package list of an embedded-storage app with COUNT entries
(default 10,000) the size a real publish leaves, then times
`/-/v1/search`, `/-/web/search` and `/` (median of 5 requests each).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time

from aiohttp.test_utils import TestClient, TestServer

from registry.config import parse_config
from registry.domain.summaries import summary_of
from registry.http.app import create_app
from registry.http.appkeys import DATABASE

WRITES_AT_ONCE = 500
REPEATS = 5


def packument(index: int) -> dict[str, object]:
    name = f"pkg-{index:05d}"
    return {
        "name": name,
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {
            "name": name, "version": "1.0.0", "description": f"package number {index} for the search bench",
            "keywords": ["bench", f"k{index % 100}"], "homepage": "https://example.com",
            "_npmUser": {"name": "alice", "email": "alice@example.com"},
        }},
        "maintainers": [{"name": "alice", "email": "alice@example.com"}],
        "time": {"created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z"},
    }


async def timed(client: TestClient, path: str) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        response = await client.get(path)
        await response.read()
        assert response.status == 200, path
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as storage:
        app = create_app(parse_config({"storage": storage, "log": {"level": "warning"}}))
        async with TestClient(TestServer(app)) as client:
            database = client.app[DATABASE]
            for start in range(0, count, WRITES_AT_ONCE):
                await asyncio.gather(*(
                    database.put("PACKAGE", f"pkg-{i:05d}", summary_of(packument(i)))
                    for i in range(start, min(count, start + WRITES_AT_ONCE))
                ))
            for label, path in [
                ("GET /-/v1/search?text=pkg-09999", f"/-/v1/search?text=pkg-{count - 1:05d}"),
                ("GET /-/v1/search?text=bench (every entry matches)", "/-/v1/search?text=bench"),
                ("GET /-/web/search?q=k42", "/-/web/search?q=k42"),
                ("GET / (web front page)", "/"),
            ]:
                print(f"{label:52s} {await timed(client, path) * 1000:8.1f} ms  ({count} packages)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
