"""Tarball uploads to S3 from a byte stream: one PutObject when small, else a
multipart upload of parts sent from a bytearray without copying it, aborted
(shielded from cancellation) on failure.

A process killed mid-upload cannot abort: `s3_upkeep` aborts what it left.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterable, Mapping
from typing import Any

from .aws import translate

LOG = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024

# Abort tasks run shielded from the cancellation that triggered them; keep a
# reference so a pending abort is not garbage-collected mid-flight.
_BACKGROUND: set[asyncio.Task[None]] = set()


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


async def upload_stream(
    client: Any, bucket: str, key: str, chunks: AsyncIterable[bytes], extra: Mapping[str, str]
) -> int:
    """Store `chunks` under `key` and return the size; nothing is visible unless all of it arrived."""
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
                    upload = await MultipartUpload.start(client, bucket, key, extra)
                await upload.send(buffer)
                buffer = bytearray()
            buffer += view
        if upload is None:
            with translate(f"writing s3 object {key}"), BufferBody(buffer) as body:
                await client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        else:
            if buffer:
                await upload.send(buffer)
            await upload.complete()
    except BaseException:
        if upload is not None:
            await upload.abort()
        raise
    return size


__all__ = ["PART_SIZE", "BufferBody", "MultipartUpload", "upload_stream"]
