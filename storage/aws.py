"""What the S3 and DynamoDB backends share: they read the same config section
through the same SDK.

Option parsing, aiobotocore client creation (`AwsOptions`, `AwsClient`), the
bounded retries and timeouts of every call (`ClientTuning`), the retries made
visible to whoever listens (`AwsClient.retry_listeners`), and the translation
of SDK and connection errors into StorageError.

Retries are botocore's own (standard or adaptive mode), never a loop of ours:
it already knows which answers are transient (5xx, SlowDown, throttling,
resets, timeouts), backs off with jitter and keeps a retry quota per client so
an outage does not multiply the load. We only bound it and watch it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from botocore.handlers import add_expect_header
from botocore.retries.standard import ExponentialBackoff

from .base import ConfigError, StorageError
from .options import parse_choice, parse_duration, parse_int

CONFIG_SECTION = "store.aws-s3-storage"
# The options of ClientTuning, read by both backends from the one section.
CLIENT_KEYS: frozenset[str] = frozenset({"maxAttempts", "retryMode", "connectTimeout", "readTimeout"})
RETRY_MODES = ("standard", "adaptive")
MAX_ATTEMPTS_LIMIT = 10  # more only stretches an outage into hung requests
# botocore's per-call context key where we note why an attempt failed.
RETRY_REASON = "tarhold_retry_reason"

RetryListener = Callable[[str, str], None]
"""Told of each retry botocore is about to send: (API operation, why the attempt before failed)."""


def opt_str(section: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    """A string option; None (or "") when absent, ConfigError when mistyped."""
    value = section.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{where}.{key}", "is required and must be a non-empty string")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}", "must be a string")
    return value


def opt_bool(section: Mapping[str, Any], key: str, where: str) -> bool:
    """A boolean option; the strings "true"/"false" count, as an env var gives them."""
    value = section.get(key, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}", "must be true or false")
    return value


@dataclass(frozen=True)
class ClientTuning:
    """How long one storage call may take: botocore's retries, bounded, and per-attempt timeouts.

    `max_attempts` counts every attempt, the first included (AWS_MAX_ATTEMPTS's
    meaning; botocore's `retries.max_attempts` would count retries only).
    Defaults: 3 attempts in standard mode, 5 s to connect, 15 s to wait for
    each read. A storage that accepts connections but never answers ends a
    call within 3 × 15 s + under 3 s of backoff, 48 s: under the 60 s idle
    timeout of common load balancers, and far under npm's 5 min; one that
    does not even accept them, within 3 × 5 s + 3 s. Reads are only timed
    after the request body went out, so a slow upload of a tarball part is
    not cut short, and a body that keeps arriving is never cut.
    """

    max_attempts: int = 3
    retry_mode: str = "standard"
    connect_timeout: float = 5.0
    read_timeout: float = 15.0

    @classmethod
    def from_section(cls, section: Mapping[str, Any], where: str = CONFIG_SECTION) -> ClientTuning:
        """The tuning options of a section; absent ones keep the defaults."""
        tuning = cls()
        if section.get("maxAttempts") is not None:
            tuning = replace(tuning, max_attempts=parse_int(
                f"{where}.maxAttempts", section["maxAttempts"], minimum=1, maximum=MAX_ATTEMPTS_LIMIT))
        if section.get("retryMode") is not None:
            tuning = replace(tuning, retry_mode=parse_choice(
                f"{where}.retryMode", section["retryMode"], RETRY_MODES))
        for key, attribute in (("connectTimeout", "connect_timeout"), ("readTimeout", "read_timeout")):
            if section.get(key) is not None:
                seconds = parse_duration(f"{where}.{key}", section[key])
                if seconds <= 0:  # 0 would mean "no timeout" to aiohttp
                    raise ConfigError(f"{where}.{key}", "must be more than 0")
                tuning = replace(tuning, **{attribute: seconds})
        return tuning

    def botocore_config(self) -> dict[str, Any]:
        """The botocore Config options that apply this tuning."""
        return {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retries": {"total_max_attempts": self.max_attempts, "mode": self.retry_mode},
        }

    def longest_call(self) -> float:
        """Seconds one call can take at most when every attempt connects slowly and then stalls.

        Each attempt waits up to connect_timeout + read_timeout; botocore sleeps
        rand(0, 1) × min(2^(k-1), 20) s before retry k. Adaptive mode may also
        wait for its client-side rate limiter, which this does not count.
        """
        cap = getattr(ExponentialBackoff, "_MAX_BACKOFF", 20)  # botocore's cap, 20 s
        backoff = sum(min(2 ** (k - 1), cap) for k in range(1, self.max_attempts))
        return self.max_attempts * (self.connect_timeout + self.read_timeout) + backoff


@dataclass(frozen=True)
class AwsOptions:
    """Where and as whom an aiobotocore client connects."""

    region: str | None = None
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    proxy: str | None = None
    tuning: ClientTuning = field(default_factory=ClientTuning)

    @classmethod
    def from_section(cls, section: Mapping[str, Any], where: str = CONFIG_SECTION) -> AwsOptions:
        key_id = opt_str(section, "accessKeyId", where)
        secret = opt_str(section, "secretAccessKey", where)
        token = opt_str(section, "sessionToken", where)
        if (key_id is None) != (secret is None):
            missing = "accessKeyId" if key_id is None else "secretAccessKey"
            raise ConfigError(f"{where}.{missing}", "accessKeyId and secretAccessKey go together")
        if token is not None and key_id is None:
            raise ConfigError(f"{where}.sessionToken", "needs accessKeyId and secretAccessKey")
        return cls(
            region=opt_str(section, "region", where),
            endpoint=opt_str(section, "endpoint", where),
            access_key_id=key_id,
            secret_access_key=secret,
            session_token=token,
            proxy=opt_str(section, "proxy", where),
            tuning=ClientTuning.from_section(section, where),
        )

    def create_client(self, service: str, **config: Any) -> Any:
        """The (not yet entered) async context manager of an aiobotocore client.

        `config` adds botocore Config options (e.g. `s3={...}`).
        """
        session = get_session()
        # A local endpoint (moto, SeaweedFS, DynamoDB Local) still needs some
        # region to sign with; on AWS the default chain decides.
        region = self.region or session.get_config_variable("region")
        if region is None and self.endpoint:
            region = "us-east-1"
        config = {**self.tuning.botocore_config(), "max_pool_connections": 64, **config}
        if self.proxy:
            config["proxies"] = {"http": self.proxy, "https": self.proxy}
        kwargs: dict[str, Any] = {"region_name": region, "config": AioConfig(**config)}
        if self.endpoint:
            kwargs["endpoint_url"] = self.endpoint
        if self.access_key_id:
            # Only explicit keys are passed: otherwise the default chain
            # (env, profile, web identity, instance role) applies.
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
            if self.session_token:
                kwargs["aws_session_token"] = self.session_token
        return session.create_client(service, **kwargs)


def client_error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("" for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def client_error_status(exc: BaseException) -> int | None:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn SDK and connection errors into StorageError naming the operation.

    They arrive here once botocore's retries are spent: a 5xx, SlowDown or
    throttling answer as ClientError, a reset or refused connection, a
    connect or read timeout as BotoCoreError (or aiohttp's, from a body being
    streamed). The message says how many retries were made, when known.
    """
    try:
        yield
    except StorageError:
        raise
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
        after = f" (after {retries} {'retry' if retries == 1 else 'retries'})" if retries else ""
        raise StorageError(f"{what}: {client_error_code(exc)} {message}".rstrip() + after) from exc
    except (BotoCoreError, aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
        raise StorageError(f"{what}: {type(exc).__name__}: {exc}") from exc


def failure_reason(response: Any, caught_exception: BaseException | None) -> str | None:
    """Why one attempt failed, in a word (an AWS error code, an exception's class); None if it did not."""
    if caught_exception is not None:
        return type(caught_exception).__name__
    if response is None:
        return None
    http_response, parsed = response
    code = parsed.get("Error", {}).get("Code") if isinstance(parsed, Mapping) else None
    if code:
        return str(code)
    status = getattr(http_response, "status_code", 200)
    return str(status) if status >= 400 else None


def send_bodies_at_once(client: Any) -> None:
    """Send S3 request bodies at once instead of waiting for "100 Continue" first.

    botocore asks for it on every PUT with a file-like body (all of ours),
    and aiohttp then waits for the interim answer with no timeout at all:
    its read timeout starts only once the body went out. A connection that
    stalls there (an overloaded endpoint, a proxy or NAT that drops it)
    would hang a publish forever. Without it the body goes out and
    read_timeout bounds the wait; what it saved (not sending a body S3
    refuses) is one 8 MiB part at most.
    """
    client.meta.events.unregister("before-call.s3", add_expect_header)


def watch_retries(client: Any, notify: RetryListener) -> None:
    """Call `notify(operation, reason)` for each retry botocore makes on `client`.

    Only watching: the decision stays botocore's retry handler's. `needs-retry`
    (asked after every attempt) notes in the call's context why an attempt
    failed; `request-created` for an attempt after the first is a retry
    being sent.
    """

    def note_failure(
        request_dict: dict[str, Any], response: Any = None,
        caught_exception: BaseException | None = None, **kwargs: Any,
    ) -> None:
        reason = failure_reason(response, caught_exception)
        if reason is not None:
            request_dict["context"][RETRY_REASON] = reason

    def on_request(request: Any, operation_name: str = "", **kwargs: Any) -> None:
        context = getattr(request, "context", None) or {}
        if context.get("retries", {}).get("attempt", 1) > 1:
            notify(operation_name, str(context.get(RETRY_REASON, "unknown")))

    events = client.meta.events
    events.register("needs-retry", note_failure, unique_id="tarhold-note-failure")
    events.register("request-created", on_request, unique_id="tarhold-watch-retries")


class AwsClient:
    """Owns one aiobotocore client: `open()` creates it, `close()` releases it."""

    service = ""

    def __init__(self, aws: AwsOptions) -> None:
        self.aws = aws
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        # Told of every retry (metrics, /health); added before open().
        self.retry_listeners: list[RetryListener] = []

    def client_config(self) -> dict[str, Any]:
        return {}

    async def open(self) -> None:
        """Create the client; call once before any other method."""
        if self._client is not None:
            return
        stack = contextlib.AsyncExitStack()
        with translate(f"creating the {self.service} client"):
            manager = self.aws.create_client(self.service, **self.client_config())
            self._client = await stack.enter_async_context(manager)
        self._stack = stack
        send_bodies_at_once(self._client)
        watch_retries(self._client, self._retried)

    def _retried(self, operation: str, reason: str) -> None:
        for listener in self.retry_listeners:
            listener(operation, reason)

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with translate(f"closing the {self.service} client"):
                await stack.aclose()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StorageError(f"the {self.service} client is not open")
        return self._client


__all__ = [
    "CLIENT_KEYS",
    "CONFIG_SECTION",
    "AwsClient",
    "AwsOptions",
    "ClientTuning",
    "RetryListener",
    "client_error_code",
    "client_error_status",
    "failure_reason",
    "opt_bool",
    "opt_str",
    "send_bodies_at_once",
    "translate",
    "watch_retries",
]
