"""Probes of what `tarhold serve` needs from its storage, for `tarhold check`.

Each probe does what serving does (list, write, read, delete) on a key or
item of its own, one step at a time, and names the step that failed with
the permission it needs, so a reader can tell a missing bucket from a
missing IAM grant. Nothing of the registry's is read or changed: the S3
object is `{keyPrefix}/.tarhold-check-{random}` (no package name starts
with a dot), the database item is under its own partition and expires.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .aws import client_error_code
from .backends import SQLITE_FILE
from .base import NotFound, RegistryDatabase, StorageError
from .s3 import S3PackageStore

PROBE_PK = "CHECK"
PROBE_TTL = 300  # seconds: a probe item a crash left behind expires


@dataclass(frozen=True)
class Step:
    """One probe step: what it did (naming the permission) and its error code; "" when it worked."""

    what: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def error_code(exc: BaseException) -> str:
    """The AWS error code, or the exception's class and message."""
    code = client_error_code(exc)
    if code:
        return code
    cause = exc.__cause__
    if isinstance(exc, StorageError) and cause is not None and client_error_code(cause):
        return client_error_code(cause)
    return f"{type(exc).__name__}: {exc}"


async def run_steps(steps: list[tuple[str, Callable[[], Awaitable[Any]]]]) -> list[Step]:
    """Run the steps in order; stop at the first that fails (the rest would fail alike)."""
    done: list[Step] = []
    for what, call in steps:
        try:
            await call()
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            done.append(Step(what, error_code(exc)))
            break
        done.append(Step(what))
    return done


async def probe_s3(store: S3PackageStore) -> list[Step]:
    """List, write, read and delete an object under the key prefix; then list multipart uploads."""
    client, bucket = store.client, store.bucket
    key = f"{store.root_prefix()}.tarhold-check-{secrets.token_hex(6)}"
    where = f"s3://{bucket}/{key}"
    steps = await run_steps([
        (f"s3:ListBucket on s3://{bucket}/{store.root_prefix()}",
         lambda: client.list_objects_v2(Bucket=bucket, Prefix=store.root_prefix(), MaxKeys=1)),
        (f"s3:PutObject on {where}", lambda: client.put_object(Bucket=bucket, Key=key, Body=b"tarhold check\n")),
        (f"s3:GetObject on {where}", lambda: _read_object(client, bucket, key)),
        (f"s3:DeleteObject on {where}", lambda: client.delete_object(Bucket=bucket, Key=key)),
    ])
    if all(step.ok for step in steps):
        steps += await run_steps([
            (f"s3:ListBucketMultipartUploads on s3://{bucket}",
             lambda: client.list_multipart_uploads(Bucket=bucket, Prefix=store.root_prefix(), MaxUploads=1)),
        ])
    elif len(steps) > 1:
        try:  # a put that worked before a get failed: leave nothing behind
            await client.delete_object(Bucket=bucket, Key=key)
        except Exception:  # noqa: BLE001, S110 - best effort; the key is a probe's
            pass
    return steps


async def _read_object(client: Any, bucket: str, key: str) -> bytes:
    response = await client.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        return bytes(await body.read())


async def probe_database(db: RegistryDatabase, table: str) -> list[Step]:
    """Describe, write, read, query and delete an item of the probe's own partition."""
    sk = secrets.token_hex(6)

    async def query() -> None:
        async for found, _ in db.query(PROBE_PK, sk):
            if found == sk:
                return
        raise NotFound("the item just written is not listed")

    steps = await run_steps([
        (f"dynamodb:DescribeTable on {table}", db.check_health),
        (f"dynamodb:UpdateItem on {table}",
         lambda: db.put(PROBE_PK, sk, {"probe": True}, expires=int(time.time()) + PROBE_TTL)),
        (f"dynamodb:GetItem on {table}", lambda: db.get(PROBE_PK, sk)),
        (f"dynamodb:Query on {table}", query),
        (f"dynamodb:DeleteItem on {table}", lambda: db.delete(PROBE_PK, sk)),
    ])
    return steps


def probe_directory(path: Path) -> Step:
    """Whether the embedded storage can live at `path`: a writable directory, or one
    that can be created (its nearest existing parent is writable). Written to, not
    asked (`os.access` says yes to root on a read-only mount)."""
    target = path
    while not target.exists():
        if target.parent == target:
            break
        target = target.parent
    if not target.is_dir():
        return Step(f"write in {path}", f"{target} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".tarhold-check-"):
            pass
    except OSError as exc:
        where = "" if target == path else f" (it does not exist yet; {target} would hold it)"
        return Step(f"write in {path}", f"{exc.strerror or exc}{where}")
    database = path / SQLITE_FILE
    if database.exists() and not os.access(database, os.R_OK | os.W_OK):
        return Step(f"write {database}", "not writable")
    return Step(f"write in {path}" + ("" if target == path else f" (created at the first start, in {target})"))


__all__ = ["PROBE_PK", "Step", "probe_database", "probe_directory", "probe_s3"]
