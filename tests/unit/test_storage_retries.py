"""Bounded storage retries: the tuning options, botocore's retries seen from outside, error translation.

The retries themselves are botocore's; what is ours is that they are bounded
and configurable (`ClientTuning`), that each one is reported
(`watch_retries`), and that whatever is left once they are spent becomes a
StorageError (`translate`). The client tests run a real aiobotocore client
against a small aiohttp app that plays DynamoDB, so no moto is needed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiobotocore.endpoint import AioEndpoint
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from registry.config import parse_config
from storage.aws import ClientTuning, failure_reason, translate
from storage.backends import validate_s3_section
from storage.base import ConfigError, NotFound, StorageError
from storage.dynamodb import DynamoRegistryDatabase

THROTTLED = {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "slow down"}
MakeServer = Callable[..., Awaitable[TestServer]]


# -- the tuning options -----------------------------------------------------------


def test_the_defaults_bound_a_stalled_call_to_about_a_minute() -> None:
    tuning = ClientTuning()
    assert (tuning.max_attempts, tuning.retry_mode) == (3, "standard")
    assert (tuning.connect_timeout, tuning.read_timeout) == (5.0, 15.0)
    # 3 attempts of 5 s + 15 s, and botocore's backoff before retries 1 and 2.
    assert tuning.longest_call() == 3 * 20 + 1 + 2


def test_max_attempts_counts_the_first_attempt_as_botocore_total_max_attempts() -> None:
    config = ClientTuning(max_attempts=4, retry_mode="adaptive").botocore_config()
    assert config["retries"] == {"total_max_attempts": 4, "mode": "adaptive"}
    assert "max_attempts" not in config["retries"]  # botocore's would mean retries, not attempts


def test_the_options_come_from_the_store_section_in_config_units() -> None:
    section = {"bucket": "b", "maxAttempts": "2", "retryMode": "adaptive",
               "connectTimeout": "500ms", "readTimeout": "2s"}
    validate_s3_section(section)
    tuning = ClientTuning.from_section(section)
    assert tuning == ClientTuning(max_attempts=2, retry_mode="adaptive", connect_timeout=0.5, read_timeout=2.0)
    config = parse_config({"store": {"aws-s3-storage": section}})
    assert config.store.section is not None and config.store.section["maxAttempts"] == "2"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("maxAttempts", 0), ("maxAttempts", 11), ("maxAttempts", "three"), ("maxAttempts", True),
        ("retryMode", "legacy"), ("connectTimeout", 0), ("readTimeout", "0s"), ("readTimeout", "soon"),
    ],
)
def test_a_bad_tuning_value_stops_the_start_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_s3_section({"bucket": "b", key: value})
    assert caught.value.key == f"store.aws-s3-storage.{key}"


def test_both_backends_read_the_same_tuning() -> None:
    section = {"bucket": "b", "maxAttempts": 5, "readTimeout": 3}
    database = DynamoRegistryDatabase.from_config(section)
    assert database.aws.tuning == ClientTuning(max_attempts=5, read_timeout=3.0)


# -- translation ------------------------------------------------------------------


def client_error(code: str, status: int, retries: int = 0) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "try again"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
    }
    return ClientError(response, "GetObject")


@pytest.mark.parametrize(
    "error",
    [
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1/x"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1/x"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1/x"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1/x"),
        client_error("InternalError", 500, retries=2),
        client_error("SlowDown", 503, retries=2),
        client_error("ThrottlingException", 400, retries=2),
        client_error("ProvisionedThroughputExceededException", 400, retries=2),
        aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
        aiohttp.ClientPayloadError("cut short"),
        TimeoutError(),
        ConnectionResetError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_what_is_left_after_the_retries_becomes_a_storage_error(error: Exception) -> None:
    with pytest.raises(StorageError) as caught, translate("reading s3 object k"):
        raise error
    assert str(caught.value).startswith("reading s3 object k: ")
    assert caught.value.__cause__ is error
    if isinstance(error, ClientError):
        assert str(caught.value).endswith("(after 2 retries)")


def test_failure_reasons_name_the_code_or_the_exception() -> None:
    class Http:
        status_code = 503

    assert failure_reason((Http(), {"Error": {"Code": "SlowDown"}}), None) == "SlowDown"
    assert failure_reason((Http(), {}), None) == "503"
    assert failure_reason(None, ReadTimeoutError(endpoint_url="u")) == "ReadTimeoutError"
    Http.status_code = 200
    assert failure_reason((Http(), {"Item": {}}), None) is None


# -- a real client against a fake DynamoDB --------------------------------------------


class FakeDynamo:
    """Answers GetItem: `failures` throttling errors first, then an empty item (NotFound)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.calls += 1
        if self.calls <= self.failures:
            return web.Response(status=400, body=orjson.dumps(THROTTLED),
                                content_type="application/x-amz-json-1.0")
        return web.Response(body=b"{}", content_type="application/x-amz-json-1.0")


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's sleeps between attempts, recorded instead of slept."""
    slept: list[float] = []

    async def record(self: Any, seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(AioEndpoint, "_sleep", record)
    return slept


async def open_database(fake: FakeDynamo, aiohttp_server: MakeServer, **section: Any) -> DynamoRegistryDatabase:
    app = web.Application()
    app.router.add_post("/", fake.handle)
    server = await aiohttp_server(app)
    database = DynamoRegistryDatabase.from_config({
        "dynamoEndpoint": str(server.make_url("/")), "dynamoRegion": "us-east-1",
        "accessKeyId": "testing", "secretAccessKey": "testing", **section,
    })
    await database.open()
    return database


# Adaptive mode also rate-limits the client after a throttle (about a second
# here, slept for real): one throttle only.
@pytest.mark.parametrize(("mode", "throttles"), [("standard", 2), ("adaptive", 1)])
async def test_botocore_retries_a_throttled_call_and_each_retry_is_reported(
    aiohttp_server: MakeServer, no_backoff: list[float], mode: str, throttles: int
) -> None:
    fake = FakeDynamo(failures=throttles)
    database = await open_database(fake, aiohttp_server, maxAttempts=3, retryMode=mode)
    retries: list[tuple[str, str]] = []
    database.retry_listeners.append(lambda operation, reason: retries.append((operation, reason)))
    try:
        with pytest.raises(NotFound):  # the third attempt got through
            await database.get("USER#alice", "PROFILE")
    finally:
        await database.close()
    assert fake.calls == throttles + 1
    assert retries == [("GetItem", "ThrottlingException")] * throttles
    assert len(no_backoff) == throttles and all(0 <= s <= 2 for s in no_backoff)


async def test_a_call_that_runs_out_of_attempts_is_a_storage_error_saying_so(
    aiohttp_server: MakeServer, no_backoff: list[float]
) -> None:
    fake = FakeDynamo(failures=100)
    database = await open_database(fake, aiohttp_server, maxAttempts=2)
    retries: list[tuple[str, str]] = []
    database.retry_listeners.append(lambda operation, reason: retries.append((operation, reason)))
    try:
        with pytest.raises(StorageError) as caught:
            await database.get("USER#alice", "PROFILE")
    finally:
        await database.close()
    assert fake.calls == 2 and len(retries) == 1  # bounded: maxAttempts counts them all
    assert "ThrottlingException" in str(caught.value) and "(after 1 retry)" in str(caught.value)
    assert not isinstance(caught.value, NotFound)
