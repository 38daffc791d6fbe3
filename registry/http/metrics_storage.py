"""Storage metrics: the package store and registry database behind timing proxies.

`instrument_storage(store, database)` wraps both in `create_app`; every call of
the two contracts is timed into `tarhold_storage_operation_seconds` and its
failures counted, by backend (fs, s3, sqlite, dynamodb) and operation.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from registry.http.metrics import metrics
from storage.base import Conflict, NotFound

STORE_OPERATIONS = (
    "read_packument", "write_packument", "write_tarball", "open_tarball", "stat_tarball",
    "tarball_location", "delete_tarball", "list_files", "delete_package", "check_health",
    "read_root_file",
)
DATABASE_OPERATIONS = ("get", "put", "delete", "query", "check_health")
BACKEND_NAMES = {
    "FsPackageStore": "fs", "S3PackageStore": "s3",
    "SqliteRegistryDatabase": "sqlite", "DynamoRegistryDatabase": "dynamodb",
}


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
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_children", children)
        object.__setattr__(self, "backend", backend)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: D105 - isinstance() looks here
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
            return await getattr(self._target, op)(*args, **kwargs)
        except NotFound:
            raise
        except Conflict:
            conflict()
            raise
        except Exception:
            error()
            raise
        finally:
            observe(time.perf_counter() - start)


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
        except Exception:
            error()
            raise
        finally:
            observe(time.perf_counter() - start)


for _op in STORE_OPERATIONS:
    setattr(InstrumentedPackageStore, _op, _timed(_op))
for _op in DATABASE_OPERATIONS:
    if _op != "query":
        setattr(InstrumentedRegistryDatabase, _op, _timed(_op))


def instrument_storage(store: Any, database: Any) -> tuple[Any, Any]:
    """The store and database behind timing proxies (see tarhold_storage_*)."""
    return InstrumentedPackageStore(store), InstrumentedRegistryDatabase(database)
