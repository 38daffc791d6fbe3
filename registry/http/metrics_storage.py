"""Storage metrics: the package store and registry database behind timing proxies.

`instrument_storage(store, database)` wraps both in `create_app`; every call of
the two contracts is timed into `tarhold_storage_operation_seconds` and its
failures counted, by backend (fs, s3, sqlite, dynamodb) and operation.

The S3 and DynamoDB clients also report each retry botocore makes
(`tarhold_storage_retries_total`, by backend, API operation and reason), and
each proxy keeps a `StorageTrouble` of recent retries and failures, which
/health reports as "degraded": a load balancer keeps sending traffic (the
calls still succeed, or fail cleanly), while whoever watches sees it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from registry.http.metrics import metrics
from storage.aws import AwsClient, client_error_code
from storage.base import Conflict, NotFound

STORE_OPERATIONS = (
    "read_packument", "write_packument", "write_tarball", "open_tarball", "stat_tarball",
    "tarball_location", "delete_tarball", "list_files", "list_stored_files", "delete_partial",
    "delete_package", "check_health", "read_root_file",
)
DATABASE_OPERATIONS = ("get", "get_many", "put", "delete", "query", "check_health")
BACKEND_NAMES = {
    "FsPackageStore": "fs", "S3PackageStore": "s3",
    "SqliteRegistryDatabase": "sqlite", "DynamoRegistryDatabase": "dynamodb",
}
# A retry or a failure makes a backend "degraded" on /health for this long...
DEGRADED_WINDOW = 60.0
# ...unless this many calls in a row went through cleanly since (health checks
# do not count: probing must not heal the status; traffic or time does).
RECOVERY_CALLS = 20
TROUBLE_KEPT = 10_000  # timestamps kept per kind; beyond this the count saturates


class StorageTrouble:
    """Recent retries and failures of one backend: what /health calls "degraded"."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._retries: deque[float] = deque(maxlen=TROUBLE_KEPT)
        self._errors: deque[float] = deque(maxlen=TROUBLE_KEPT)
        self._last_at: float | None = None
        self._last = ""
        self._clean = 0

    def retried(self, operation: str, reason: str) -> None:
        self._note(self._retries, f"{operation} retried after {reason}")

    def failed(self, operation: str, exc: BaseException) -> None:
        cause = exc.__cause__ or exc
        self._note(self._errors, f"{operation} failed: {client_error_code(cause) or type(cause).__name__}")

    def succeeded(self) -> None:
        self._clean += 1

    def _note(self, times: deque[float], what: str) -> None:
        now = self._clock()
        times.append(now)
        self._last_at, self._last, self._clean = now, what, 0

    def report(self) -> dict[str, Any] | None:
        """None when nothing went wrong lately; else counts over the window and the last trouble.

        The last trouble names an operation and an error code, never a key
        or a package name: /health answers anyone.
        """
        now = self._clock()
        if self._last_at is None or now - self._last_at > DEGRADED_WINDOW or self._clean >= RECOVERY_CALLS:
            return None
        for times in (self._retries, self._errors):
            while times and now - times[0] > DEGRADED_WINDOW:
                times.popleft()
        return {
            "status": "degraded", "retries": len(self._retries), "errors": len(self._errors),
            "window_seconds": DEGRADED_WINDOW, "last": self._last,
            "seconds_ago": round(now - self._last_at, 1),
        }


def recent_trouble(instrumented: Any) -> dict[str, Any] | None:
    """The /health entry of a store or database behind a proxy of this module (None: fine)."""
    try:
        trouble = object.__getattribute__(instrumented, "trouble")
    except AttributeError:  # not instrumented (a test's bare backend)
        return None
    report: dict[str, Any] | None = trouble.report()
    return report


# -- storage ------------------------------------------------------------------


class _Instrumented:
    """A transparent proxy that times the contract's calls and counts their failures.

    `isinstance` sees the wrapped class (through `__class__`), other attributes
    are the wrapped object's, and an attribute set on the proxy (a test's
    monkeypatch of a contract method) overrides the timed method.
    """

    _operations: tuple[str, ...] = ()

    def __init__(self, target: Any) -> None:
        m = metrics()
        backend = BACKEND_NAMES.get(type(target).__name__, type(target).__name__.lower())
        children = {
            op: (
                m.storage_seconds.labels(backend, op).observe,
                m.storage_errors.labels(backend, op).inc,
                m.storage_conflicts.labels(backend, op).inc,
            )
            for op in self._operations
        }
        trouble = StorageTrouble()
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_children", children)
        object.__setattr__(self, "backend", backend)
        object.__setattr__(self, "trouble", trouble)
        if isinstance(target, AwsClient):
            retries = m.storage_retries

            def retried(operation: str, reason: str) -> None:
                retries.labels(backend, operation, reason).inc()
                trouble.retried(operation, reason)

            target.retry_listeners.append(retried)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() looks here
        return type(object.__getattribute__(self, "_target"))

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_target"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._operations:
            object.__setattr__(self, name, value)
        else:
            setattr(self._target, name, value)

    def __repr__(self) -> str:
        return f"<instrumented {self._target!r}>"

    async def _call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        observe, error, conflict = self._children[op]
        start = time.perf_counter()
        try:
            result = await getattr(self._target, op)(*args, **kwargs)
        except NotFound:
            self._succeeded(op)  # an answer, not trouble
            raise
        except Conflict:
            conflict()
            self._succeeded(op)
            raise
        except Exception as exc:
            error()
            self.trouble.failed(op, exc)
            raise
        finally:
            observe(time.perf_counter() - start)
        self._succeeded(op)
        return result

    def _succeeded(self, op: str) -> None:
        if op != "check_health":
            self.trouble.succeeded()


def _timed(op: str) -> Callable[..., Awaitable[Any]]:
    async def call(self: _Instrumented, *args: Any, **kwargs: Any) -> Any:
        return await self._call(op, *args, **kwargs)

    call.__name__ = call.__qualname__ = op
    return call


class InstrumentedPackageStore(_Instrumented):
    _operations = STORE_OPERATIONS


class InstrumentedRegistryDatabase(_Instrumented):
    _operations = DATABASE_OPERATIONS

    def query(self, pk: str, sk_prefix: str = "") -> AsyncIterator[tuple[str, dict[str, Any]]]:
        return self._timed_query(pk, sk_prefix)

    async def _timed_query(self, pk: str, sk_prefix: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        # Timed until the last page was read (or the caller stopped early).
        observe, error, _ = self._children["query"]
        start = time.perf_counter()
        try:
            async for item in self._target.query(pk, sk_prefix):
                yield item
        except NotFound:
            raise
        except Exception as exc:
            error()
            self.trouble.failed("query", exc)
            raise
        finally:
            observe(time.perf_counter() - start)
        self.trouble.succeeded()


for _op in STORE_OPERATIONS:
    setattr(InstrumentedPackageStore, _op, _timed(_op))
for _op in DATABASE_OPERATIONS:
    if _op != "query":
        setattr(InstrumentedRegistryDatabase, _op, _timed(_op))


def instrument_storage(store: Any, database: Any) -> tuple[Any, Any]:
    """The store and database behind timing proxies (see tarhold_storage_*)."""
    return InstrumentedPackageStore(store), InstrumentedRegistryDatabase(database)
