"""Storage degradation on /health and in the metrics: `StorageTrouble` and the storage proxies.

A retry or a failure makes a backend "degraded" (200) for DEGRADED_WINDOW
seconds, or until RECOVERY_CALLS calls in a row went through cleanly; a
failing health check is still "error" (503). The e2e storage fault tests show
the same through a real process; these pin the rules down without one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from botocore.exceptions import ClientError

from registry.config import parse_config
from registry.http.app import create_app
from registry.http.appkeys import DATABASE, STORE
from registry.http.metrics import metrics
from registry.http.metrics_storage import (
    DEGRADED_WINDOW,
    RECOVERY_CALLS,
    InstrumentedPackageStore,
    StorageTrouble,
    recent_trouble,
)
from storage.base import Conflict, NotFound, StorageError
from storage.s3 import S3PackageStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def storage_error(code: str) -> StorageError:
    cause = ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")
    error = StorageError("reading s3 object prefix/secret-package/package.json: SlowDown")
    error.__cause__ = cause
    return error


def test_nothing_wrong_is_no_report() -> None:
    trouble = StorageTrouble()
    trouble.succeeded()
    assert trouble.report() is None


def test_a_retry_is_degraded_for_the_window() -> None:
    clock = Clock()
    trouble = StorageTrouble(clock)
    trouble.retried("GetObject", "SlowDown")
    clock.now += 5
    report = trouble.report()
    assert report == {
        "status": "degraded", "retries": 1, "errors": 0, "window_seconds": DEGRADED_WINDOW,
        "last": "GetObject retried after SlowDown", "seconds_ago": 5.0,
    }
    clock.now += DEGRADED_WINDOW
    assert trouble.report() is None


def test_a_failure_names_the_operation_and_the_code_but_no_key() -> None:
    trouble = StorageTrouble(Clock())
    trouble.failed("read_packument", storage_error("SlowDown"))
    report = trouble.report()
    assert report is not None and report["errors"] == 1
    assert report["last"] == "read_packument failed: SlowDown"
    assert "secret-package" not in str(report)


def test_enough_clean_calls_in_a_row_end_the_degradation_early() -> None:
    trouble = StorageTrouble(Clock())
    trouble.retried("PutObject", "InternalError")
    for _ in range(RECOVERY_CALLS - 1):
        trouble.succeeded()
    assert trouble.report() is not None
    trouble.retried("PutObject", "InternalError")  # starts the count again
    for _ in range(RECOVERY_CALLS - 1):
        trouble.succeeded()
    assert trouble.report() is not None
    trouble.succeeded()
    assert trouble.report() is None


def test_the_counts_cover_the_window_only() -> None:
    clock = Clock()
    trouble = StorageTrouble(clock)
    trouble.retried("GetItem", "ThrottlingException")
    clock.now += DEGRADED_WINDOW - 1
    trouble.retried("GetItem", "ThrottlingException")
    clock.now += 2
    report = trouble.report()
    assert report is not None and report["retries"] == 1


# -- the storage proxies ------------------------------------------------------------


class FlakyStore:
    """Just enough of a package store for the proxy: what each call does is set by the test."""

    def __init__(self) -> None:
        self.outcome: BaseException | None = None

    async def read_packument(self, name: str) -> str:
        if self.outcome is not None:
            raise self.outcome
        return "document"

    async def check_health(self) -> None:
        return None


async def test_the_proxy_counts_failures_but_not_answers_as_trouble() -> None:
    target = FlakyStore()
    store: Any = InstrumentedPackageStore(target)
    for answer in (NotFound("no packument"), Conflict("changed")):
        target.outcome = answer
        with pytest.raises(type(answer)):
            await store.read_packument("a")
    assert recent_trouble(store) is None
    target.outcome = storage_error("InternalError")
    with pytest.raises(StorageError):
        await store.read_packument("a")
    report = recent_trouble(store)
    assert report is not None and report["last"] == "read_packument failed: InternalError"


async def test_health_checks_do_not_heal_the_status_traffic_does() -> None:
    target = FlakyStore()
    store: Any = InstrumentedPackageStore(target)
    store.trouble.retried("GetObject", "SlowDown")
    for _ in range(RECOVERY_CALLS):
        await store.check_health()
    assert recent_trouble(store) is not None
    for _ in range(RECOVERY_CALLS):
        await store.read_packument("a")
    assert recent_trouble(store) is None


def test_the_proxy_listens_to_the_retries_of_an_aws_backend() -> None:
    target = S3PackageStore("bucket", endpoint="http://127.0.0.1:1")
    store: Any = InstrumentedPackageStore(target)
    assert len(target.retry_listeners) == 1
    counter = metrics().storage_retries.labels("s3", "PutObject", "SlowDown")
    before = counter._value.get()
    target.retry_listeners[0]("PutObject", "SlowDown")
    assert counter._value.get() == before + 1
    report = recent_trouble(store)
    assert report is not None and report["retries"] == 1


# -- /health ----------------------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(create_app(parse_config({"storage": str(tmp_path / "storage")})))


async def test_health_is_degraded_after_storage_retries_and_ok_once_calls_are_clean(
    client: TestClient,
) -> None:
    response = await client.get("/health")
    assert response.status == 200 and (await response.json())["status"] == "ok"

    client.app[DATABASE].trouble.retried("UpdateItem", "ThrottlingException")
    response = await client.get("/health")
    body = await response.json()
    assert response.status == 200 and body["status"] == "degraded"
    assert body["checks"]["store"] == {"status": "ok"}
    assert body["checks"]["database"]["status"] == "degraded"
    assert body["checks"]["database"]["last"] == "UpdateItem retried after ThrottlingException"

    for _ in range(RECOVERY_CALLS):
        await client.app[DATABASE].get("CONFIG", "SECRET")
    body = await (await client.get("/health")).json()
    assert body["status"] == "ok" and body["checks"]["database"] == {"status": "ok"}


async def test_a_failing_health_check_is_still_an_error(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down() -> None:
        raise StorageError("s3 bucket b is not reachable: SlowDown")

    client.app[STORE].trouble.retried("ListObjectsV2", "SlowDown")
    monkeypatch.setattr(client.app[STORE]._target, "check_health", down)
    response = await client.get("/health")
    body = await response.json()
    assert response.status == 503 and body["status"] == "error"
    assert body["checks"]["store"]["status"] == "error"
