"""`/-/metrics` after a scripted sequence of requests, on every backend.

The metric objects live for the whole test process (as in production), so each
test reads the values before and after its requests and checks the difference.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from registry.http.appkeys import DATABASE, MIRROR, STORE
from registry.http.metrics_middleware import fixed_route, package_route
from registry.http.metrics_storage import DATABASE_OPERATIONS, STORE_OPERATIONS
from storage.base import PackageStore, RegistryDatabase, StorageError
from tests.support.fake_upstream import FakeUpstream

from .conftest import MakeClient
from .packages import make_tarball, publish_body
from .users import add_user, bearer

UPLINK = "meter"
Sample = tuple[str, tuple[tuple[str, str], ...]]


async def scrape(client: TestClient) -> dict[Sample, float]:
    """Every sample of /-/metrics, keyed by name and sorted labels."""
    response = await client.get("/-/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: dict[Sample, float] = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def key(name: str, **labels: str) -> Sample:
    return (name, tuple(sorted(labels.items())))


def delta(before: dict[Sample, float], after: dict[Sample, float], name: str, **labels: str) -> float:
    return after.get(key(name, **labels), 0.0) - before.get(key(name, **labels), 0.0)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        fake.add_package("lodash", ["4.17.21"])
        fake.fail("broken", 500)
        yield fake


@pytest.fixture
async def client(make_client: MakeClient, upstream: FakeUpstream) -> TestClient:
    return await make_client(
        uplinks={UPLINK: {"url": upstream.url, "timeout": "5s", "max_fails": 1, "fail_timeout": "5m"}},
        packages={
            "@private/*": {"access": "$all", "publish": "$authenticated"},
            "**": {"access": "$all", "publish": "$authenticated", "proxy": UPLINK},
        },
    )


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_metrics_count_a_scripted_sequence_of_requests(
    client: TestClient, upstream: FakeUpstream, backend: str
) -> None:
    before = await scrape(client)
    token = await add_user(client, "alice")
    tarball = make_tarball("@private/metered", "1.0.0")
    body = publish_body("@private/metered", "1.0.0", tarball)
    assert (await client.put("/@private%2fmetered", json=body, headers=bearer(token))).status == 201
    for _ in range(3):
        assert (await client.get("/@private%2fmetered")).status == 200
    assert (await client.get("/@private/missing")).status == 404
    local = await client.get("/@private/metered/-/metered-1.0.0.tgz")
    assert local.status == 200 and await local.read() == tarball
    assert (await client.get("/lodash")).status == 200  # fetched from the uplink: a miss
    assert (await client.get("/lodash")).status == 200  # fresh for maxage: a hit
    mirrored = await client.get("/lodash/-/lodash-4.17.21.tgz")  # the packument lookup hits again
    assert mirrored.status == 200 and await mirrored.read() == upstream.tarball_bytes("lodash", "4.17.21")
    stats = client.app[MIRROR].stats.counts
    await wait_for(lambda: stats[f"{UPLINK}:tarball_misses"] == 1)
    assert (await client.get("/broken")).status == 502  # max_fails 1: the circuit opens
    after = await scrape(client)

    requests = "tarhold_http_requests_total"
    assert delta(before, after, requests, route="login", method="PUT", status="201") == 1
    assert delta(before, after, requests, route="publish", method="PUT", status="201") == 1
    assert delta(before, after, requests, route="packument", method="GET", status="200") == 5
    assert delta(before, after, requests, route="packument", method="GET", status="404") == 1
    assert delta(before, after, requests, route="packument", method="GET", status="502") == 1
    assert delta(before, after, requests, route="tarball", method="GET", status="200") == 2
    assert delta(before, after, requests, route="metrics", method="GET", status="200") == 1
    assert delta(before, after, "tarhold_publishes_total") == 1
    assert delta(before, after, "tarhold_http_request_duration_seconds_count", route="packument") == 7
    assert delta(before, after, "tarhold_http_request_duration_seconds_count", route="tarball") == 2
    assert delta(before, after, "tarhold_http_request_duration_seconds_bucket", route="tarball", le="+Inf") == 2
    assert delta(before, after, "tarhold_http_request_duration_seconds_sum", route="tarball") > 0
    upstream_tarball = upstream.tarball_bytes("lodash", "4.17.21")
    assert delta(before, after, "tarhold_http_response_bytes_total", route="tarball") == len(tarball) + len(
        upstream_tarball
    )
    # Nothing else runs while the scrape reads these (and it does not count itself).
    assert after[key("tarhold_http_requests_in_flight")] == 0

    assert delta(before, after, "tarhold_uplink_cache_requests_total", uplink=UPLINK, result="miss") == 1
    assert delta(before, after, "tarhold_uplink_cache_requests_total", uplink=UPLINK, result="hit") == 2
    assert delta(before, after, "tarhold_uplink_cache_requests_total", uplink=UPLINK, result="stale") == 0
    assert delta(before, after, "tarhold_uplink_tarball_fetches_total", uplink=UPLINK) == 1
    assert delta(before, after, "tarhold_uplink_errors_total", uplink=UPLINK, kind="fetch") == 1
    assert delta(before, after, "tarhold_uplink_errors_total", uplink=UPLINK, kind="integrity") == 0
    assert delta(before, after, "tarhold_uplink_received_bytes_total", uplink=UPLINK) == len(
        upstream.packument_bytes("lodash")
    ) + len(upstream_tarball)
    assert after[key("tarhold_uplink_circuit_state", uplink=UPLINK)] == 1

    store_backend, db_backend = ("fs", "sqlite") if backend == "embedded" else ("s3", "dynamodb")
    seconds = "tarhold_storage_operation_seconds_count"
    # One tarball from the publish, one mirrored from the uplink.
    assert delta(before, after, seconds, backend=store_backend, operation="write_tarball") == 2
    assert delta(before, after, seconds, backend=db_backend, operation="put") >= 1
    errors = {k: v for k, v in after.items() if k[0] == "tarhold_storage_errors_total"}
    assert errors and all(v == before.get(k, 0.0) for k, v in errors.items())


async def test_bytes_of_a_tarball_sent_from_disk_are_counted(make_client: MakeClient) -> None:
    # Not held in memory: the fs backend sends it with sendfile, S3 streams it.
    client = await make_client(cache={"tarball_max_size": 0})
    token = await add_user(client, "alice")
    tarball = make_tarball("big", "1.0.0", files={"data.txt": "x" * 100_000})
    assert (await client.put("/big", json=publish_body("big", "1.0.0", tarball), headers=bearer(token))).status == 201
    before = await scrape(client)
    for _ in range(2):
        response = await client.get("/big/-/big-1.0.0.tgz")
        assert response.status == 200 and await response.read() == tarball
    assert (await client.head("/big/-/big-1.0.0.tgz")).status == 200
    after = await scrape(client)
    assert delta(before, after, "tarhold_http_response_bytes_total", route="tarball") == 2 * len(tarball)
    assert delta(before, after, "tarhold_http_requests_total", route="tarball", method="GET", status="200") == 2
    assert delta(before, after, "tarhold_http_requests_total", route="tarball", method="HEAD", status="200") == 1


async def test_a_request_in_progress_is_in_flight(client: TestClient, upstream: FakeUpstream) -> None:
    upstream.add_package("slow", ["1.0.0"])
    upstream.stall("slow", 1.0)
    slow = asyncio.ensure_future(client.get("/slow"))
    await asyncio.sleep(0.3)
    during = await scrape(client)
    assert during[key("tarhold_http_requests_in_flight")] == 1
    assert (await slow).status == 200
    assert (await scrape(client))[key("tarhold_http_requests_in_flight")] == 0


async def test_health_reports_an_open_circuit_as_degraded_not_down(client: TestClient) -> None:
    health = await (await client.get("/health")).json()
    assert health["status"] == "ok"
    assert health["uplinks"][UPLINK] == {"status": "ok", "circuit": "closed", "errors": 0}
    assert (await client.get("/broken")).status == 502
    response = await client.get("/health")
    assert response.status == 200
    health = await response.json()
    assert health["status"] == "degraded"
    assert health["checks"]["store"]["status"] == "ok"
    uplink = health["uplinks"][UPLINK]
    assert uplink["status"] == "degraded" and uplink["circuit"] == "open" and uplink["errors"] == 1
    assert uplink["last_error_at"].endswith("Z")


async def test_a_failing_storage_call_counts_as_a_storage_error(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    token = await add_user(client, "alice")
    store = client.app[STORE]
    before = await scrape(client)

    async def broken(*args: Any, **kwargs: Any) -> str:
        raise StorageError("simulated outage")

    monkeypatch.setattr(store._target, "write_packument", broken)  # the backend, behind the proxy
    response = await client.put("/@private%2fdown", json=publish_body("@private/down", "1.0.0"),
                                headers=bearer(token))
    assert response.status == 503
    after = await scrape(client)
    store_backend = "fs" if backend == "embedded" else "s3"
    errors = "tarhold_storage_errors_total"
    assert delta(before, after, errors, backend=store_backend, operation="write_packument") == 1
    assert delta(before, after, "tarhold_http_requests_total", route="publish", method="PUT", status="503") == 1
    assert delta(before, after, "tarhold_publishes_total") == 0


async def test_the_storage_proxies_stay_transparent(client: TestClient, backend: str) -> None:
    store, database = client.app[STORE], client.app[DATABASE]
    assert isinstance(store, PackageStore) and isinstance(database, RegistryDatabase)
    if backend == "embedded":
        from storage.fs import FsPackageStore
        from storage.sqlite import SqliteRegistryDatabase

        assert isinstance(store, FsPackageStore) and isinstance(database, SqliteRegistryDatabase)
    else:
        from storage.dynamodb import DynamoRegistryDatabase
        from storage.s3 import S3PackageStore

        assert isinstance(store, S3PackageStore) and isinstance(database, DynamoRegistryDatabase)
    assert type(store).__name__ == "InstrumentedPackageStore"
    items = [sk async for sk, _ in database.query("CONFIG")]
    assert items[:2] == ["SECRET", "SIGNKEY"] and len(items) == 3 and items[2].startswith("SIGNKEY#")


def test_every_call_of_the_storage_contracts_is_timed() -> None:
    for contract, timed in ((PackageStore, STORE_OPERATIONS), (RegistryDatabase, DATABASE_OPERATIONS)):
        calls = {
            name for name, member in vars(contract).items()
            if not name.startswith("_") and (inspect.iscoroutinefunction(member) or name == "query")
        }
        assert calls - {"open", "close"} == set(timed), contract.__name__


async def test_metrics_need_no_credentials(client: TestClient) -> None:
    response = await client.get("/-/metrics")
    assert response.status == 200
    assert "tarhold_http_requests_total" in await response.text()


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/lodash", "packument"),
        ("HEAD", "/@types%2fnode", "packument"),
        ("GET", "/@types/node", "packument"),
        ("GET", "/lodash/4.17.21", "manifest"),
        ("GET", "/@types/node/latest", "manifest"),
        ("GET", "/lodash/-/lodash-4.17.21.tgz", "tarball"),
        ("GET", "/@types/node/-/node-20.0.0.tgz", "tarball"),
        ("GET", "/@types%2fnode/-/node-20.0.0.tgz", "tarball"),
        ("GET", "/@types%2Fnode/20.0.0", "manifest"),
        ("PUT", "/lodash", "publish"),
        ("PUT", "/@scope%2fpkg", "publish"),
        ("PUT", "/lodash/-rev/3-abc", "change"),
        ("DELETE", "/lodash/-rev/3-abc", "unpublish"),
        ("DELETE", "/lodash/-/lodash-1.0.0.tgz/-rev/4-def", "unpublish"),
        ("PUT", "/lodash/beta", "dist_tags"),
        ("POST", "/lodash", "other"),
        ("GET", "/lodash/-/x/y", "other"),
        ("GET", "/", "other"),
    ],
)
def test_package_paths_are_labelled_by_shape_never_by_name(method: str, path: str, route: str) -> None:
    assert package_route(method, path) == route


@pytest.mark.parametrize(
    ("resource", "route"),
    [
        ("/-/ping", "ping"), ("/health", "health"), ("/-/metrics", "metrics"),
        ("/-/user/org.couchdb.user:{name}", "login"), ("/-/whoami", "whoami"),
        ("/-/user/token/{token}", "token"), ("/-/npm/v1/tokens/token/{key}", "token"),
        ("/-/npm/v1/user", "user"), ("/-/v1/search", "search"),
        ("/-/npm/v1/security/advisories/bulk", "audit"), ("/-/tarhold/users/{name}", "admin"),
        ("/-/package/{tail}", "dist_tags"), ("/", "web"), ("/-/web/detail/{name}", "web"),
        ("/-/something-new", "other"),
    ],
)
def test_registered_routes_are_labelled_by_their_pattern(resource: str, route: str) -> None:
    assert fixed_route(resource) == route


MULTIPROCESS_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys

    import registry.http.app  # imports prometheus_client before the directory is set, as the CLI does
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request
    from prometheus_client import multiprocess
    from registry.http.metrics import metrics
    from registry.http.metrics_endpoint import metrics_handler

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    m = metrics()
    m.batch.record("packument", "GET", 200, 0.003, 100)
    m.batch.in_flight += 2  # the scrape below and one more
    m.batch.flush()  # nothing pending may cross the fork
    pid = os.fork()
    if pid == 0:  # a second worker: counts, then exits
        for _ in range(2):
            m.batch.record("packument", "GET", 200, 0.2, 50)
        m.uplink_event("up", "hits", 5)
        m.batch.in_flight += 1
        m.batch.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    multiprocess.mark_process_dead(pid)  # what the serving parent does when a worker ends
    request = make_mocked_request("GET", "/-/metrics", app=web.Application())
    response = asyncio.run(metrics_handler(request))
    sys.stdout.write(response.body.decode())
    """
)


def test_metrics_merge_every_worker_in_multiprocess_mode(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    samples = {}
    for family in text_string_to_metric_families(result.stdout):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert samples[key("tarhold_http_requests_total", route="packument", method="GET", status="200")] == 3
    assert samples[key("tarhold_http_request_duration_seconds_count", route="packument")] == 3
    assert samples[key("tarhold_http_request_duration_seconds_bucket", route="packument", le="0.005")] == 1
    assert samples[key("tarhold_http_request_duration_seconds_bucket", route="packument", le="0.25")] == 3
    assert samples[key("tarhold_http_request_duration_seconds_sum", route="packument")] == pytest.approx(0.403)
    assert samples[key("tarhold_http_response_bytes_total", route="packument")] == 200
    assert samples[key("tarhold_uplink_cache_requests_total", uplink="up", result="hit")] == 5
    # livesum: the worker that ended no longer counts as in flight.
    assert samples[key("tarhold_http_requests_in_flight")] == 1
    assert any(p.name.startswith("counter_") for p in tmp_path.iterdir())
