"""PackageStore on S3 (or an S3-compatible store) through aiobotocore.

Packuments are written with S3 conditional writes (`If-Match` on the ETag read
before, `If-None-Match: *` for a new package), so instances behind a load
balancer never overwrite each other. Tarballs stream in: one PutObject when
small, a multipart upload of 8 MiB parts otherwise, aborted on any error so
nothing becomes visible. The options are those of verdaccio-aws-s3-storage.

The first section (option parsing, client creation, error translation) is
shared with the DynamoDB backend, which reads the same config section.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from .base import (
    PACKUMENT_FILE,
    ConfigError,
    Conflict,
    NotFound,
    PackageStore,
    StorageError,
    StorageFolder,
    StoredPackument,
    TarballReader,
    no_folder,
)

LOG = logging.getLogger(__name__)

S3_KEYS: frozenset[str] = frozenset(
    "bucket keyPrefix region endpoint s3ForcePathStyle tarballACL"
    " accessKeyId secretAccessKey sessionToken proxy".split()
)

CONFIG_SECTION = "store.aws-s3-storage"
PART_SIZE = 8 * 1024 * 1024
READ_CHUNK = 256 * 1024
DELETE_BATCH = 1000
MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})

# Abort tasks run shielded from the cancellation that triggered them; keep a
# reference so a pending abort is not garbage-collected mid-flight.
_BACKGROUND: set[asyncio.Task[None]] = set()


# -- shared with the DynamoDB backend (same config section, same SDK) --------


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
class AwsOptions:
    """Where and as whom an aiobotocore client connects."""

    region: str | None = None
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    proxy: str | None = None

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
        config = {
            "connect_timeout": 10,
            "read_timeout": 60,
            "retries": {"max_attempts": 3, "mode": "standard"},
            "max_pool_connections": 64,
            **config,
        }
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
    """Turn SDK and connection errors into StorageError naming the operation."""
    try:
        yield
    except StorageError:
        raise
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        raise StorageError(f"{what}: {client_error_code(exc)} {message}".rstrip()) from exc
    except (BotoCoreError, aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
        raise StorageError(f"{what}: {exc}") from exc


class AwsClient:
    """Owns one aiobotocore client: `open()` creates it, `close()` releases it."""

    service = ""

    def __init__(self, aws: AwsOptions) -> None:
        self.aws = aws
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None

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


# -- S3 ---------------------------------------------------------------------


def is_missing(exc: Exception) -> bool:
    """True for the "no such object" answer of GetObject/HeadObject/PutObject."""
    return client_error_code(exc) in MISSING_CODES


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
        folder: StorageFolder = no_folder,
        **aws: str | None,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        super().__init__(AwsOptions(**aws))
        self.bucket = bucket
        self.key_prefix = key_prefix.strip("/")
        self.force_path_style = force_path_style
        self.tarball_acl = tarball_acl or None
        self.folder = folder

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
            folder=folder,
            **vars(AwsOptions.from_section(section, where)),
        )

    def client_config(self) -> dict[str, Any]:
        return {"s3": {"addressing_style": "path"}} if self.force_path_style else {}

    def describe(self) -> Mapping[str, str]:
        info = {"type": "s3", "bucket": self.bucket, "keyPrefix": self.key_prefix}
        if self.aws.endpoint:
            info["endpoint"] = self.aws.endpoint
        return info

    # -- layout -------------------------------------------------------------

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
        with translate(f"reading s3 object {key}"):
            try:
                response = await self.client.get_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if is_missing(exc):
                    raise NotFound(f"no packument for {name}") from None
                raise
            async with response["Body"] as body:
                data = await body.read()
        return StoredPackument(data, response["ETag"])

    async def write_packument(
        self,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:
        if (if_match is None) == (not if_absent):
            raise ValueError("write_packument needs exactly one of if_match, if_absent")
        key = self.file_key(name, PACKUMENT_FILE)
        condition = {"IfMatch": if_match} if if_match is not None else {"IfNoneMatch": "*"}
        with translate(f"writing s3 object {key}"):
            try:
                response = await self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    ContentType="application/json",
                    **condition,
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
        # The part being filled is the only buffer and is sent as it is, so
        # memory holds one part plus one incoming chunk, never a copy of both.
        buffer = bytearray()
        size = 0
        upload: MultipartUpload | None = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                view = memoryview(chunk)
                while len(buffer) + len(view) >= PART_SIZE:
                    take = PART_SIZE - len(buffer)
                    buffer += view[:take]
                    view = view[take:]
                    if upload is None:
                        upload = await MultipartUpload.start(self.client, self.bucket, key, extra)
                    await upload.send(buffer)
                    buffer = bytearray()
                buffer += view
            if upload is None:
                with translate(f"writing s3 object {key}"), BufferBody(buffer) as body:
                    await self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
            else:
                if buffer:
                    await upload.send(buffer)
                await upload.complete()
        except BaseException:
            if upload is not None:
                await upload.abort()
            raise
        return size

    async def open_tarball(self, name: str, filename: str) -> TarballReader:
        key = self.file_key(name, filename)
        with translate(f"reading s3 object {key}"):
            try:
                response = await self.client.get_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if is_missing(exc):
                    raise NotFound(f"no tarball {filename} for {name}") from None
                raise
        return S3TarballReader(response["Body"], int(response["ContentLength"]), response["ETag"], key)

    async def delete_tarball(self, name: str, filename: str) -> None:
        key = self.file_key(name, filename)
        with translate(f"deleting s3 object {key}"):
            try:
                await self.client.head_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if is_missing(exc):
                    raise NotFound(f"no tarball {filename} for {name}") from None
                raise
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

    async def check_health(self) -> None:
        # ListObjectsV2 under our own prefix, not HeadBucket: a policy that
        # limits s3:ListBucket to the key prefix (see provision.iam_policy)
        # denies HeadBucket but allows this.
        prefix = f"{self.key_prefix}/" if self.key_prefix else ""
        try:
            await self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except StorageError:
            raise
        except Exception as exc:
            reason = client_error_code(exc) or type(exc).__name__
            raise StorageError(f"s3 bucket {self.bucket} is not reachable: {reason}") from exc


class BufferBody(io.RawIOBase):
    """A seekable read-only file over a bytearray, without copying it.

    Sent as a request body, aiohttp streams a file in small chunks; a bytes
    body goes to the transport whole, where Python 3.11 copies what the socket
    did not take at once (most of a part) into its own buffer.
    """

    def __init__(self, data: bytearray) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._pos = 0

    def close(self) -> None:
        # Drop the view now: botocore's request objects may live on in a
        # reference cycle, and with them a whole part until the next GC.
        self._view = memoryview(b"")
        super().close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        # One copy of the piece asked for (RawIOBase.read would make three).
        end = len(self._view) if size is None or size < 0 else self._pos + size
        piece = bytes(self._view[self._pos : end])
        self._pos += len(piece)
        return piece

    def readinto(self, buffer: Any) -> int:
        piece = self._view[self._pos : self._pos + len(buffer)]
        buffer[: len(piece)] = piece
        self._pos += len(piece)
        return len(piece)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


class MultipartUpload:
    """One S3 multipart upload in progress: parts sent so far, complete or abort."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str, checksum: str | None) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.checksum = checksum
        self.parts: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, client: Any, bucket: str, key: str, extra: Mapping[str, str]) -> MultipartUpload:
        # botocore checksums each part by default (request_checksum_calculation
        # "when_supported"); the upload must then be created with the same
        # algorithm and the part checksums sent again on completion, exactly as
        # s3transfer does, or S3 rejects the parts.
        checksum = "CRC32" if client.meta.config.request_checksum_calculation == "when_supported" else None
        args = dict(extra)
        if checksum:
            args["ChecksumAlgorithm"] = checksum
        with translate(f"starting multipart upload of {key}"):
            response = await client.create_multipart_upload(Bucket=bucket, Key=key, **args)
        LOG.debug("multipart upload %s of %s started", response["UploadId"], key)
        return cls(client, bucket, key, response["UploadId"], checksum)

    async def send(self, data: bytearray) -> None:
        number = len(self.parts) + 1
        args = {"ChecksumAlgorithm": self.checksum} if self.checksum else {}
        with translate(f"uploading part {number} of {self.key}"), BufferBody(data) as body:
            response = await self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
                **args,
            )
        part: dict[str, Any] = {"ETag": response["ETag"], "PartNumber": number}
        member = f"Checksum{self.checksum}"
        if self.checksum and member in response:
            part[member] = response[member]
        self.parts.append(part)

    async def complete(self) -> None:
        with translate(f"completing multipart upload of {self.key}"):
            await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )

    async def abort(self) -> None:
        """Abort the upload, even while the calling task is being cancelled.

        Never raises anything but CancelledError: a failed abort is logged.
        """
        task = asyncio.get_running_loop().create_task(self._abort())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
        await asyncio.shield(task)

    async def _abort(self) -> None:
        try:
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
            LOG.debug("multipart upload %s of %s aborted", self.upload_id, self.key)
        except Exception as exc:  # noqa: BLE001 - the original error matters more
            LOG.warning(
                "could not abort multipart upload %s of %s (a lifecycle rule"
                " AbortIncompleteMultipartUpload cleans it up): %s",
                self.upload_id,
                self.key,
                exc,
            )


__all__ = [
    "S3_KEYS",
    "AwsClient",
    "AwsOptions",
    "MultipartUpload",
    "S3PackageStore",
    "S3TarballReader",
    "translate",
]
