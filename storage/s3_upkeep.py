"""What S3 leaves behind, and what gc needs to find it.

- A process killed mid-upload (kill -9, OOM, a lost host) cannot abort its
  multipart upload: it stays in progress, invisible as an object but billed
  for its parts. `abort_abandoned_uploads` aborts such uploads when a store
  opens, once older than the `abort_multipart_after` option.
- gc's orphan sweep needs each file's age and every package that has any
  file (a packument, or only tarballs). One ListObjectsV2 gives key, size,
  ETag and LastModified, so no HEAD request per file is needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from .aws import client_error_code, translate
from .base import PACKUMENT_FILE, ConfigError, StorageFolder, StoredFile
from .layout import name_from_parts
from .options import parse_duration

LOG = logging.getLogger(__name__)

# An upload younger than this may belong to a live instance and is left
# alone. A day: far longer than any real tarball upload (a 1 GiB tarball at
# 100 KB/s takes three hours, and uplink and client timeouts end a stalled
# one in minutes), and the same age as the AbortIncompleteMultipartUpload
# rule `tarhold init` and the Terraform module put on the bucket.
ABORT_MULTIPART_AFTER = 24 * 3600.0
ABORT_OPTION = "abort_multipart_after"


def parse_abort_after(section: Mapping[str, Any], where: str) -> float | None:
    """`abort_multipart_after`: a duration (default a day), or false to leave uploads to the bucket rule."""
    value = section.get(ABORT_OPTION, ABORT_MULTIPART_AFTER)
    if value is False or (isinstance(value, str) and value.strip().lower() in ("false", "off", "never")):
        return None
    if value is True or value is None:
        raise ConfigError(f"{where}.{ABORT_OPTION}", "must be a duration like 24h, or false")
    return parse_duration(f"{where}.{ABORT_OPTION}", value)


async def abort_abandoned_uploads(
    client: Any, bucket: str, prefix: str, older_than: float, now: float | None = None
) -> list[str]:
    """Abort the tarball uploads under `prefix` started more than `older_than` seconds ago.

    Returns the keys whose uploads were aborted. Only keys of tarballs
    (`*.tgz`) count: with an empty key prefix the bucket may hold other
    programs' uploads. Never raises: cleaning up must not stop a start, and
    the bucket's lifecycle rule remains (a policy without
    s3:ListBucketMultipartUploads is the usual reason it fails).
    """
    cutoff = (time.time() if now is None else now) - older_than
    aborted: list[str] = []
    try:
        paginator = client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads") or ():
                key, upload_id, started = upload["Key"], upload["UploadId"], upload.get("Initiated")
                if not key.endswith(".tgz") or started is None or started.timestamp() > cutoff:
                    continue
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
                LOG.warning(
                    "aborted multipart upload %s of %s, started %s: abandoned by a process that stopped mid-upload",
                    upload_id, key, started.isoformat(),
                )
                aborted.append(key)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        if client_error_code(exc) == "NoSuchBucket":  # `tarhold init` opens the store before creating it
            return aborted
        LOG.warning(
            "could not look for abandoned multipart uploads under s3://%s/%s (%s); the bucket's"
            " AbortIncompleteMultipartUpload rule cleans them up", bucket, prefix, client_error_code(exc) or exc,
        )
    return aborted


async def stored_files(client: Any, bucket: str, prefix: str, page_size: int) -> list[StoredFile]:
    """The objects directly under `prefix` (a package's files), with size, ETag and age.

    The delimiter keeps the files of a package stored below this one out
    (a storage folder may share the package's name).
    """
    found: list[StoredFile] = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": page_size}
    )
    with translate(f"listing s3 objects under {prefix}"):
        async for page in pages:
            for entry in page.get("Contents", ()):
                key = entry["Key"]
                if key.endswith("/"):  # a directory marker (SeaweedFS)
                    continue
                modified = entry.get("LastModified")
                found.append(StoredFile(
                    key[len(prefix):],
                    int(entry.get("Size") or 0),
                    modified.timestamp() if modified is not None else None,
                    str(entry.get("ETag") or ""),
                ))
    return found


async def names_with_files(
    client: Any, bucket: str, root: str, folder: StorageFolder, page_size: int
) -> AsyncIterator[str]:
    """Every package name with a packument or a tarball under `root`, each once.

    One listing of every key, as `package_names` does; a set remembers the
    names already given, since keys of one package need not be adjacent.
    """
    seen: set[str] = set()
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=root, PaginationConfig={"PageSize": page_size}
    )
    with translate(f"listing s3 objects under {root}"):
        async for page in pages:
            for entry in page.get("Contents", ()):
                parts = entry["Key"][len(root):].split("/")
                if len(parts) < 2 or not (parts[-1] == PACKUMENT_FILE or parts[-1].endswith(".tgz")):
                    continue
                name = name_from_parts(parts[:-1], folder)
                if name is not None and name not in seen:
                    seen.add(name)
                    yield name


__all__ = [
    "ABORT_MULTIPART_AFTER",
    "abort_abandoned_uploads",
    "names_with_files",
    "parse_abort_after",
    "stored_files",
]
