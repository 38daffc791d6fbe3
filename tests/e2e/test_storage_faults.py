"""Storage faults: a real `tarhold serve` on S3 + DynamoDB behind a fault-injecting proxy.

Between tarhold and moto sits `tests.support.fault_proxy`, answering a share
of the requests with 500s, SlowDown, throttling, resets or stalls. What must
hold, whatever it injects:

- a publish answers 201 or a clean 5xx JSON error, and storage keeps exactly
  the acknowledged versions: every 201 is there byte for byte, nothing else
  is, and what failed can be published again;
- reads ride out transient faults on botocore's retries;
- nothing hangs past the configured timeouts;
- /health says "degraded" while storage calls need retries and "ok" once they
  no longer do; /-/metrics counts the retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storage.aws import ClientTuning
from tests.e2e.fixtures import (
    TarholdServer,
    TarholdStorage,
    http_bytes,
    http_json,
    path_of,
    start_tarhold,
    unique_name,
)
from tests.http.packages import make_tarball, publish_body, tarball_name
from tests.support.aws_servers import AwsEndpoint, provision_aws
from tests.support.fault_proxy import (
    DYNAMODB,
    INTERNAL,
    OFF,
    PROVISIONED,
    RESET,
    S3,
    SLOWDOWN,
    STALL,
    THROTTLE,
    FaultPlan,
    FaultProxy,
    fault_proxy,
)

BUCKET = "tarhold-e2e"
# Short timeouts, so a stall costs seconds; three attempts, so that at a 30 %
# fault rate most calls succeed on a retry and a few run out of attempts.
TUNING = {"maxAttempts": 3, "connectTimeout": "1s", "readTimeout": "1s"}
STALL_TUNING = {"maxAttempts": 2, "connectTimeout": "1s", "readTimeout": "1s"}
# The read test's own server: a retry quota no other test has drawn on (botocore's
# standard mode stops retrying once a client's quota is spent), five attempts,
# and timeouts a loaded two-core machine does not hit by accident.
READ_TUNING = {"maxAttempts": 5, "connectTimeout": "5s", "readTimeout": "5s"}
# Every read goes to storage: nothing answered from the in-process caches.
NO_CACHE = {"cache": {"packument_ttl": 0, "tarball_memory": 0}}
MIXED = frozenset({INTERNAL, SLOWDOWN, THROTTLE, PROVISIONED, RESET})
TRANSIENT = frozenset({INTERNAL, SLOWDOWN, THROTTLE, PROVISIONED})
REPUBLISH_PATIENCE = 30.0  # seconds a failed publish's version reservation may linger


# -- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy(moto_server: AwsEndpoint) -> Iterator[FaultProxy]:
    with fault_proxy(moto_server.url, seed=15) as running:
        yield running


@pytest.fixture(autouse=True)
def faults_off_after(proxy: FaultProxy) -> Iterator[None]:
    """Each test starts and ends without faults."""
    proxy.plan = OFF
    yield
    proxy.plan = OFF


def start_behind(
    proxy: FaultProxy, moto: AwsEndpoint, workdir: Path, tuning: dict[str, Any], name: str
) -> TarholdServer:
    """tarhold on fresh S3 + DynamoDB storage, talking to moto through the proxy."""
    section = {
        **moto.s3_section(BUCKET, unique_name("faults") + "/"),
        **moto.dynamodb_section(unique_name("tarhold-faults")),
    }
    asyncio.run(provision_aws(section))  # straight to moto: setup is not under test
    storage = TarholdStorage("aws", store_section={**proxy.through(section), **tuning})
    return start_tarhold(storage, workdir, name, config=NO_CACHE)


@pytest.fixture(scope="module")
def registry(
    proxy: FaultProxy, moto_server: AwsEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TarholdServer]:
    server = start_behind(proxy, moto_server, tmp_path_factory.mktemp("faults"), TUNING, "tarhold")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(registry: TarholdServer) -> str:
    return registry.add_user(unique_name("publisher"))


# -- helpers --------------------------------------------------------------------


def publish(server: TarholdServer, token: str, name: str, version: str) -> tuple[int, Any]:
    tarball = make_tarball(name, version)
    body = publish_body(name, version, tarball, base=server.url.rstrip("/"))
    return http_json("PUT", server.url + path_of(name).lstrip("/"), body, token=token)


def tarball_url(server: TarholdServer, name: str, version: str) -> str:
    return f"{server.url}{path_of(name).lstrip('/')}/-/{tarball_name(name, version)}"


def assert_clean_error(status: int, body: Any, what: str) -> None:
    """A 5xx the npm CLI can print: JSON with an "error", no traceback."""
    assert 500 <= status < 600, f"{what}: {status} {body!r}"
    assert isinstance(body, dict) and isinstance(body.get("error"), str), f"{what}: {status} {body!r}"
    assert "Traceback" not in body["error"] and "botocore" not in body["error"], body


def health(server: TarholdServer) -> dict[str, Any]:
    status, body = http_json("GET", server.url + "health")
    assert status == 200, body
    return dict(body)


def retries_counted(server: TarholdServer) -> dict[str, float]:
    """tarhold_storage_retries_total summed per backend, from /-/metrics."""
    status, text = http_bytes(server.url + "-/metrics")
    assert status == 200
    totals: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line.startswith("tarhold_storage_retries_total{"):
            labels, value = line.rsplit(" ", 1)
            backend = labels.split('backend="', 1)[1].split('"', 1)[0]
            totals[backend] = totals.get(backend, 0.0) + float(value)
    return totals


def stored_files(moto: AwsEndpoint, server: TarholdServer, name: str) -> set[str]:
    """The files S3 holds for a package, listed straight from moto (not through the proxy)."""
    section = server.storage.store_section
    assert section is not None
    prefix = f"{section['keyPrefix'].rstrip('/')}/{name}/"
    listing = moto.client("s3").list_objects_v2(Bucket=section["bucket"], Prefix=prefix)  # type: ignore[attr-defined]
    return {entry["Key"][len(prefix):] for entry in listing.get("Contents", [])}


def republish(server: TarholdServer, token: str, name: str, version: str) -> int:
    """Publish a version that failed before; a 409 (its reservation lingering) is waited out."""
    deadline = time.monotonic() + REPUBLISH_PATIENCE
    while True:
        status, body = publish(server, token, name, version)
        if status != 409 or time.monotonic() > deadline:
            assert status == 201, f"{name}@{version}: {status} {body}"
            return status
        time.sleep(0.5)


def recover(server: TarholdServer, token: str) -> dict[str, Any]:
    """Clean traffic until /health says "ok" (each publish makes several clean calls)."""
    deadline = time.monotonic() + 20
    name = unique_name("recovery")
    count = 0
    while True:
        state = health(server)
        if state["status"] == "ok" or time.monotonic() > deadline:
            return state
        count += 1
        assert publish(server, token, name, f"1.0.{count}")[0] == 201


# -- tests ----------------------------------------------------------------------


def test_publishes_under_faults_succeed_or_fail_cleanly_and_storage_keeps_what_was_acknowledged(
    registry: TarholdServer, token: str, proxy: FaultProxy, moto_server: AwsEndpoint
) -> None:
    name = unique_name("faulty")
    assert publish(registry, token, name, "0.0.1")[0] == 201  # the package exists, owned by us
    versions = [f"1.0.{n}" for n in range(12)]
    before = retries_counted(registry)

    proxy.plan = FaultPlan(rate=0.3, kinds=MIXED)
    with ThreadPoolExecutor(5) as pool:
        answers = dict(zip(versions, pool.map(lambda v: publish(registry, token, name, v), versions)))
        # Two more whose packument write always fails, after their tarball was stored.
        proxy.plan = FaultPlan(rate=1.0, kinds=frozenset({INTERNAL}), targets=frozenset({S3}),
                               methods=frozenset({"PUT"}), path_contains="package.json")
        doomed = ["2.0.0", "2.0.1"]
        answers.update(zip(doomed, pool.map(lambda v: publish(registry, token, name, v), doomed)))
    assert all(answers[v][0] >= 500 for v in doomed), answers
    injected = proxy.injected
    proxy.plan = OFF

    assert sum(injected.values()) >= 20, injected
    acknowledged = {v for v, (status, _) in answers.items() if status == 201}
    failed = set(answers) - acknowledged
    for version in failed:
        assert_clean_error(*answers[version], f"publish {name}@{version}")
    assert len(acknowledged) >= 5, answers  # retries carried most of them

    doc = registry.packument(name)
    assert set(doc["versions"]) == acknowledged | {"0.0.1"}
    assert set(doc["time"]) - {"created", "modified"} == acknowledged | {"0.0.1"}
    for version in acknowledged:
        status, data = http_bytes(tarball_url(registry, name, version))
        assert status == 200 and data == make_tarball(name, version), version
    for version in failed:
        assert http_bytes(tarball_url(registry, name, version))[0] == 404, version
    # The doomed ones' tarballs were removed again (a failed removal under
    # random faults would leave an orphan that is never served; gc sweeps it).
    assert not {tarball_name(name, v) for v in doomed} & stored_files(moto_server, registry, name)
    for version in sorted(failed):
        republish(registry, token, name, version)
    doc = registry.packument(name)
    assert set(doc["versions"]) == set(answers) | {"0.0.1"}
    assert all(http_bytes(tarball_url(registry, name, v))[1] == make_tarball(name, v) for v in failed)

    after = retries_counted(registry)
    for backend in ("s3", "dynamodb"):
        assert after.get(backend, 0) > before.get(backend, 0), (before, after)


def test_a_write_whose_answer_was_lost_is_not_refused_as_a_conflict_with_itself(
    registry: TarholdServer, token: str, proxy: FaultProxy
) -> None:
    """Storage applies a conditional write and the answer is lost (a reset after it);
    botocore's retry then meets the write itself. The publish must not answer 409
    "being published by another request" (its lease) nor 403 "cannot publish over"
    (its packument): it landed, so 201; or, when retries ran out, a clean 5xx."""
    name = unique_name("lost-answers")
    assert publish(registry, token, name, "0.0.1")[0] == 201
    versions = [f"1.1.{n}" for n in range(8)]
    proxy.plan = FaultPlan(
        rate=0.35, kinds=frozenset({RESET}), methods=frozenset({"PUT", "POST"}),
        operations=frozenset({"UpdateItem", "DeleteItem"}), after_forward=True,
    )
    answers = {v: publish(registry, token, name, v) for v in versions}
    injected = proxy.total_injected(RESET)
    proxy.plan = OFF
    assert injected > 0

    doc = registry.packument(name)
    for version, (status, body) in answers.items():
        if status != 201:
            assert_clean_error(status, body, f"publish {name}@{version}")
        if status == 201 or version in doc["versions"]:  # landed: whole
            assert http_bytes(tarball_url(registry, name, version)) == (200, make_tarball(name, version))
        else:
            assert http_bytes(tarball_url(registry, name, version))[0] == 404
            republish(registry, token, name, version)
    assert sum(status == 201 for status, _ in answers.values()) >= len(versions) // 2, answers


def test_reads_ride_out_transient_faults_on_retries(
    proxy: FaultProxy, moto_server: AwsEndpoint, tmp_path: Path
) -> None:
    registry = start_behind(proxy, moto_server, tmp_path, READ_TUNING, "tarhold-reads")
    try:
        reads_ride_out_faults(registry, registry.add_user(unique_name("reader")), proxy)
    finally:
        registry.stop()


def reads_ride_out_faults(registry: TarholdServer, token: str, proxy: FaultProxy) -> None:
    names = [unique_name("readable") for _ in range(4)]
    for name in names:
        assert publish(registry, token, name, "1.0.0")[0] == 201
    urls = [registry.url + path_of(n).lstrip("/") for n in names] + [
        tarball_url(registry, n, "1.0.0") for n in names
    ]
    reads = urls * 5
    start = dict(proxy.injected)

    proxy.plan = FaultPlan(rate=0.3, kinds=TRANSIENT)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(http_bytes, reads))
    proxy.plan = OFF

    injected = sum(proxy.injected.values()) - sum(start.values())
    assert injected >= 5, proxy.injected
    # Without retries about 60 % would succeed (70 % of packument reads, 49 %
    # of tarball reads, which read the packument too); with five attempts a
    # call fails 0.3^5 = 0.24 % of the time, a read under 1 %.
    ok = sum(status == 200 for status, _ in answers)
    assert ok >= 0.9 * len(reads), [status for status, _ in answers]
    for (status, data), url in zip(answers, reads):
        assert status in (200, 503), (url, status, data[:200])
        if status == 503:
            assert b'"error"' in data, data
        elif url.endswith(".tgz"):
            name = url.split("/-/")[0].rsplit("/", 1)[1]
            assert data == make_tarball(name, "1.0.0")


def test_health_is_degraded_while_storage_retries_and_ok_again_after(
    registry: TarholdServer, token: str, proxy: FaultProxy
) -> None:
    assert recover(registry, token)["status"] == "ok"
    name = unique_name("health")
    # Faults on the publish path only (S3 PUTs, DynamoDB item calls), never
    # on what the health checks call (ListObjectsV2, DescribeTable): /health
    # itself answers, and what it says is what the publish went through.
    proxy.plan = FaultPlan(
        rate=0.5, kinds=frozenset({SLOWDOWN, THROTTLE}), methods=frozenset({"PUT", "POST"}),
        operations=frozenset({"GetItem", "UpdateItem", "DeleteItem"}),
    )
    # Until both have been through some: mostly one publish, but a publish makes
    # several database calls before its first S3 PUT, and may fail on one of them.
    for n in range(12):
        publish(registry, token, name, f"1.0.{n}")
        state = health(registry)
        if all(check["status"] == "degraded" for check in state["checks"].values()):
            break
    proxy.plan = OFF
    assert proxy.total_injected(SLOWDOWN, THROTTLE) > 0

    assert state["status"] == "degraded", state
    troubled = list(state["checks"].values())
    assert all(c["status"] == "degraded" and c["retries"] + c["errors"] > 0 for c in troubled), state
    assert any("SlowDown" in c["last"] or "Throttling" in c["last"] for c in troubled), state
    assert name not in str(state)  # /health answers anyone: no package names

    state = recover(registry, token)
    assert state["status"] == "ok", state
    assert state["checks"] == {"store": {"status": "ok"}, "database": {"status": "ok"}}


def test_stalled_storage_ends_requests_within_the_configured_timeouts(
    proxy: FaultProxy, moto_server: AwsEndpoint, tmp_path: Path
) -> None:
    server = start_behind(proxy, moto_server, tmp_path, STALL_TUNING, "tarhold-stall")
    try:
        token = server.add_user(unique_name("staller"))
        name = unique_name("stalled")
        # One stalled call ends within this; a request makes few of them before it fails.
        longest_call = ClientTuning(max_attempts=2, connect_timeout=1, read_timeout=1).longest_call()
        bound = 2 * longest_call + 2

        proxy.plan = FaultPlan(rate=1.0, kinds=frozenset({STALL}), stall_seconds=60)
        started = time.monotonic()
        status, body = http_json("GET", server.url + path_of(unique_name("uncached")).lstrip("/"))
        read_took = time.monotonic() - started
        assert_clean_error(status, body, "packument GET")

        started = time.monotonic()
        status, body = publish(server, token, name, "1.0.0")
        publish_took = time.monotonic() - started
        assert_clean_error(status, body, "publish")
        # Only the tarball upload stalls (the publish got past auth and its
        # reservation): an upload must not wait for a "100 Continue" forever.
        proxy.plan = FaultPlan(rate=1.0, kinds=frozenset({STALL}), targets=frozenset({S3}),
                               methods=frozenset({"PUT"}), stall_seconds=60)
        started = time.monotonic()
        status, body = publish(server, token, name, "1.0.1")
        upload_took = time.monotonic() - started
        assert_clean_error(status, body, "publish with a stalled upload")
        stalled = proxy.injected[(S3, STALL)] + proxy.injected[(DYNAMODB, STALL)]
        proxy.plan = OFF

        assert stalled >= 3
        took = (read_took, publish_took, upload_took)
        assert max(took) < bound, (took, bound)
        for version in ("1.0.0", "1.0.1"):  # storage was left as it was
            republish(server, token, name, version)
    finally:
        server.stop()
