"""PackageStore on S3 (or an S3-compatible store) through aiobotocore.

Packuments are written with S3 conditional writes (`If-Match` on the ETag read
before, `If-None-Match: *` for a new package), so instances behind a load
balancer never overwrite each other. Tarballs stream in: one PutObject when
small, a multipart upload of 8 MiB parts otherwise, aborted on any error so
nothing becomes visible. The options are those of verdaccio-aws-s3-storage.

Option parsing, client creation and error translation live in `aws`, shared
with the DynamoDB backend, which reads the same config section; the multipart
upload lives in `s3_multipart`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from . import s3_upkeep as upkeep
from .aws import (
    CONFIG_SECTION,
    AwsClient,
    AwsOptions,
    client_error_code,
    client_error_status,
    opt_bool,
    opt_str,
    translate,
)
from .base import (
    PACKUMENT_FILE,
    ConfigError,
    Conflict,
    NotFound,
    PackageStore,
    StorageError,
    StorageFolder,
    StoredFile,
    StoredPackument,
    TarballInfo,
    TarballReader,
    no_folder,
)
from .layout import name_from_parts
from .s3_multipart import upload_stream

LOG = logging.getLogger(__name__)

S3_KEYS: frozenset[str] = frozenset(
    "bucket keyPrefix region endpoint s3ForcePathStyle tarballACL"
    " accessKeyId secretAccessKey sessionToken proxy tarball_redirect abort_multipart_after".split()
)

READ_CHUNK = 1024 * 1024  # large reads: fewer loop turns per streamed megabyte
PRESIGNED = "presigned"
PRESIGNED_EXPIRY = 15 * 60  # seconds a presigned tarball URL stays valid
DELETE_BATCH = 1000
MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


@contextlib.contextmanager
def missing_is_not_found(message: str) -> Iterator[None]:
    """Raise NotFound(message) for S3's "no such object" answer (GetObject, HeadObject).

    The one place that answer becomes NotFound; use it inside `translate`,
    which turns every other SDK error into StorageError.
    """
    try:
        yield
    except ClientError as exc:
        if client_error_code(exc) in MISSING_CODES:
            raise NotFound(message) from None
        raise


def parse_tarball_redirect(value: str | None, where: str = CONFIG_SECTION) -> str | None:
    """`tarball_redirect`: "presigned", or the base URL of a CDN in front of the bucket."""
    if value is None or value == PRESIGNED:
        return value
    if value.startswith(("http://", "https://")) and len(value.split("://", 1)[1].strip("/")) > 0:
        return value.rstrip("/")
    raise ConfigError(
        f"{where}.tarball_redirect",
        f"must be {PRESIGNED!r} or the http(s):// base URL of a CDN serving the bucket, not {value!r}",
    )


class S3TarballReader(TarballReader):
    """A GetObject response body, streamed in READ_CHUNK pieces."""

    def __init__(self, body: Any, size: int, etag: str, key: str) -> None:
        self._body = body
        self.size = size
        self.etag = etag
        self.key = key

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with translate(f"reading s3 object {self.key}"):
            async for chunk in self._body.iter_chunks(READ_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        # Closing (not releasing) drops a half-read connection instead of
        # draining the rest of a large body into the void.
        try:
            await self._body.aclose()
        except Exception as exc:  # noqa: BLE001 - closing must not fail the caller
            LOG.debug("closing s3 body of %s: %s", self.key, exc)


class S3PackageStore(AwsClient, PackageStore):
    """Files under `{keyPrefix}/{storage folder}/{name}/` in one bucket.

    The keyword arguments after `folder` are those of AwsOptions (region,
    endpoint, access_key_id, secret_access_key, session_token, proxy).
    """

    service = "s3"
    page_size: int = 1000  # MaxKeys of each ListObjectsV2 page

    def __init__(
        self,
        bucket: str,
        *,
        key_prefix: str = "",
        force_path_style: bool = False,
        tarball_acl: str | None = None,
        tarball_redirect: str | None = None,
        folder: StorageFolder = no_folder,
        abort_multipart_after: float | None = upkeep.ABORT_MULTIPART_AFTER,
        **aws: Any,  # AwsOptions fields
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        super().__init__(AwsOptions(**aws))
        self.bucket = bucket
        self.key_prefix = key_prefix.strip("/")
        self.force_path_style = force_path_style
        self.tarball_acl = tarball_acl or None
        # None: tarballs stream through tarhold; "presigned" or a CDN base URL:
        # clients are redirected there and the bytes bypass tarhold.
        self.tarball_redirect = parse_tarball_redirect(tarball_redirect)
        self.redirects_tarballs = self.tarball_redirect is not None
        self.folder = folder
        self.abort_multipart_after = abort_multipart_after  # None: left to the bucket's rule

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any], folder: StorageFolder = no_folder, where: str = CONFIG_SECTION
    ) -> S3PackageStore:
        """Build from the `store: aws-s3-storage:` section; ignores keys it does not read."""
        bucket = opt_str(section, "bucket", where, required=True)
        assert bucket is not None
        return cls(
            bucket,
            key_prefix=opt_str(section, "keyPrefix", where) or "",
            force_path_style=opt_bool(section, "s3ForcePathStyle", where),
            tarball_acl=opt_str(section, "tarballACL", where),
            tarball_redirect=parse_tarball_redirect(opt_str(section, "tarball_redirect", where), where),
            folder=folder,
            abort_multipart_after=upkeep.parse_abort_after(section, where),
            **vars(AwsOptions.from_section(section, where)),
        )

    async def open(self) -> None:
        await super().open()
        if self.abort_multipart_after is not None:  # what a killed instance left mid-upload
            await upkeep.abort_abandoned_uploads(self.client, self.bucket, self.root_prefix(), self.abort_multipart_after)

    def client_config(self) -> dict[str, Any]:
        return {"s3": {"addressing_style": "path"}} if self.force_path_style else {}

    def describe(self) -> Mapping[str, str]:
        info = {"type": "s3", "bucket": self.bucket, "keyPrefix": self.key_prefix}
        if self.aws.endpoint:
            info["endpoint"] = self.aws.endpoint
        return info

    # -- layout -------------------------------------------------------------

    def root_prefix(self) -> str:
        """The key prefix every file of this store starts with ("" or ending with '/')."""
        return f"{self.key_prefix}/" if self.key_prefix else ""

    def package_prefix(self, name: str) -> str:
        """The key prefix of a package's files, ending with '/'."""
        # Names are validated before they reach storage; this is the last guard.
        if not name or name.startswith(("/", ".")) or ".." in name.split("/") or "//" in name:
            raise StorageError(f"unsafe package name {name!r}")
        parts = (self.key_prefix, self.folder(name).strip("/"), name)
        return "/".join(p for p in parts if p) + "/"

    def file_key(self, name: str, filename: str) -> str:
        if not filename or "/" in filename or filename.startswith("."):
            raise StorageError(f"unsafe file name {filename!r}")
        return self.package_prefix(name) + filename

    # -- packuments ---------------------------------------------------------

    async def read_packument(self, name: str) -> StoredPackument:
        key = self.file_key(name, PACKUMENT_FILE)
        data, etag = await self._read_object(key, f"no packument for {name}")
        return StoredPackument(data, etag)

    async def packument_token(self, name: str) -> str:
        key = self.file_key(name, PACKUMENT_FILE)
        with translate(f"reading s3 object {key}"), missing_is_not_found(f"no packument for {name}"):
            response = await self.client.head_object(Bucket=self.bucket, Key=key)
        return str(response["ETag"])

    async def write_packument(
        self, name: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False,
    ) -> str:
        if (if_match is None) == (not if_absent):
            raise ValueError("write_packument needs exactly one of if_match, if_absent")
        key = self.file_key(name, PACKUMENT_FILE)
        condition = {"IfMatch": if_match} if if_match is not None else {"IfNoneMatch": "*"}
        with translate(f"writing s3 object {key}"):
            try:
                response = await self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, ContentType="application/json", **condition,
                )
            except Exception as exc:
                code = client_error_code(exc)
                if (
                    code in CONFLICT_CODES
                    or client_error_status(exc) in (409, 412)
                    or (if_match is not None and code in MISSING_CODES)
                ):
                    raise Conflict(f"packument of {name} changed since it was read") from None
                raise
        return str(response["ETag"])

    # -- tarballs -----------------------------------------------------------

    async def write_tarball(
        self, name: str, filename: str, chunks: AsyncIterable[bytes]
    ) -> int:
        key = self.file_key(name, filename)
        extra: dict[str, str] = {"ContentType": "application/octet-stream"}
        if self.tarball_acl:
            extra["ACL"] = self.tarball_acl
        return await upload_stream(self.client, self.bucket, key, chunks, extra)

    async def open_tarball(self, name: str, filename: str) -> TarballReader:
        key = self.file_key(name, filename)
        with translate(f"reading s3 object {key}"), missing_is_not_found(f"no tarball {filename} for {name}"):
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
        return S3TarballReader(response["Body"], int(response["ContentLength"]), response["ETag"], key)

    async def stat_tarball(self, name: str, filename: str) -> TarballInfo:
        key = self.file_key(name, filename)
        with translate(f"reading s3 object {key}"), missing_is_not_found(f"no tarball {filename} for {name}"):
            response = await self.client.head_object(Bucket=self.bucket, Key=key)
        modified = response.get("LastModified")
        return TarballInfo(int(response["ContentLength"]), response["ETag"], modified.timestamp() if modified else None)

    async def tarball_location(self, name: str, filename: str) -> str | None:
        if self.tarball_redirect is None:
            return None
        key = self.file_key(name, filename)
        if self.tarball_redirect != PRESIGNED:
            # The CDN serves the bucket's keys under its base URL.
            return f"{self.tarball_redirect}/{quote(key, safe='/@')}"
        with translate(f"presigning s3 object {key}"):
            return str(
                await self.client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": key},
                    ExpiresIn=PRESIGNED_EXPIRY,
                )
            )

    async def delete_tarball(self, name: str, filename: str) -> None:
        key = self.file_key(name, filename)
        with translate(f"deleting s3 object {key}"):
            with missing_is_not_found(f"no tarball {filename} for {name}"):
                await self.client.head_object(Bucket=self.bucket, Key=key)
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    # -- packages -----------------------------------------------------------

    async def _keys(self, prefix: str) -> AsyncIterator[str]:
        """Keys directly under prefix, following every page.

        The delimiter keeps another package's files out: with a storage folder
        "scoped" and a package also named "scoped", `scoped/` holds both.
        """
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=prefix,
            Delimiter="/",
            PaginationConfig={"PageSize": self.page_size},
        )
        with translate(f"listing s3 objects under {prefix}"):
            async for page in pages:
                for entry in page.get("Contents", ()):
                    # Skip directory markers ("reg/lodash/"), which SeaweedFS
                    # lists once a package's files are gone.
                    if not entry["Key"].endswith("/"):
                        yield entry["Key"]

    async def list_files(self, name: str) -> list[str]:
        prefix = self.package_prefix(name)
        return [key[len(prefix):] async for key in self._keys(prefix)]

    async def list_stored_files(self, name: str) -> list[StoredFile]:
        return await upkeep.stored_files(self.client, self.bucket, self.package_prefix(name), self.page_size)

    def stored_package_names(self) -> AsyncIterator[str]:
        return upkeep.names_with_files(self.client, self.bucket, self.root_prefix(), self.folder, self.page_size)

    async def delete_package(self, name: str) -> None:
        prefix = self.package_prefix(name)
        # List everything first: deleting while paging could skip keys on
        # stores whose continuation token is an offset.
        keys = [key async for key in self._keys(prefix)]
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            with translate(f"deleting s3 objects under {prefix}"):
                response = await self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"deleting s3 objects under {prefix}: {len(errors)} failed,"
                    f" e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
                )

    async def package_names(self) -> AsyncIterator[str]:
        # Without a delimiter: one listing of every key finds packuments at
        # any depth (folder, scope), at the price of listing tarballs too.
        prefix = self.root_prefix()
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
        )
        with translate(f"listing s3 objects under {prefix}"):
            async for page in pages:
                for entry in page.get("Contents", ()):
                    key = entry["Key"][len(prefix):]
                    if key.endswith("/" + PACKUMENT_FILE):
                        name = name_from_parts(key.split("/")[:-1], self.folder)
                        if name is not None:
                            yield name

    async def read_root_file(self, filename: str) -> bytes:
        if not filename or "/" in filename or filename in (".", ".."):
            raise StorageError(f"unsafe file name {filename!r}")
        key = self.root_prefix() + filename
        data, _ = await self._read_object(key, f"no file {filename} in s3 bucket {self.bucket}")
        return data

    def package_location(self, name: str) -> str:
        # The endpoint tells two S3-compatible services apart; without one
        # it is AWS itself.
        return f"s3://{self.aws.endpoint or 'aws'}/{self.bucket}/{self.package_prefix(name)}"

    async def _read_object(self, key: str, missing: str) -> tuple[bytes, str]:
        """A whole (small) object's bytes and ETag; raises NotFound(missing)."""
        with translate(f"reading s3 object {key}"):
            with missing_is_not_found(missing):
                response = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                data = await body.read()
        return data, str(response["ETag"])

    async def check_health(self) -> None:
        # ListObjectsV2 under our own prefix, not HeadBucket: a policy that
        # limits s3:ListBucket to the key prefix (see provision.iam_policy)
        # denies HeadBucket but allows this.
        prefix = self.root_prefix()
        try:
            await self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except StorageError:
            raise
        except Exception as exc:
            reason = client_error_code(exc) or type(exc).__name__
            raise StorageError(f"s3 bucket {self.bucket} is not reachable: {reason}") from exc


__all__ = [
    "S3_KEYS",
    "S3PackageStore",
    "S3TarballReader",
]
