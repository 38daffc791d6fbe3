"""`npm publish`: decode and verify the attachment, store it, then the packument.

Order matters for "no visible half state": the version is reserved (so no
other request can write the same tarball name), the tarball is stored, and
only then does the conditional packument write make the version visible. Any
failure after the tarball write removes it again and releases the version.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

from registry.domain.clock import now_iso
from registry.domain.errors import BadRequest, Forbidden, Unprocessable
from registry.domain.manifest_fields import check_manifest_fields
from registry.domain.names import tarball_filename, validate_package_name
from registry.domain.packages import Packages, is_mirrored
from registry.domain.packed_manifest import from_tarball
from registry.domain.packument import AttachmentInfo, apply_publish
from registry.domain.tarball import Limits, inspect_in_pool
from storage.base import NotFound
from uplinks.documents import is_tombstone

LOG = logging.getLogger(__name__)

DECODE_CHUNK = 4 * 1024 * 1024  # base64 characters per step; a multiple of 4
SPOOL_IN_MEMORY = 8 * 1024 * 1024
READ_CHUNK = 256 * 1024


def maintainer_names(doc: dict[str, Any] | None) -> list[str]:
    if not doc:
        return []
    return [m.get("name") for m in doc.get("maintainers", []) if isinstance(m, dict)]


def check_maintainer(doc: dict[str, Any] | None, user: str) -> None:
    """Only maintainers may change a package that has versions, or publish a fully unpublished one.

    A fully unpublished name stays its last maintainers' (a stricter rule than
    the public registry's, which frees it after 24 hours): builds may still
    name it, and nobody else should be able to fill it.
    """
    if not doc or user in maintainer_names(doc):
        return
    if doc.get("versions"):
        raise Forbidden(f"you are not a maintainer of {doc.get('name')}; ask one to run npm owner add {user}")
    if is_tombstone(doc):
        raise Forbidden(
            f"{doc.get('name')} was unpublished; only its last maintainers may publish it again"
        )


def decode_attachment(data: Any, spool: IO[bytes]) -> AttachmentInfo:
    """Decode base64 into `spool` in slices, hashing on the way; never a second full copy."""
    if not isinstance(data, str):
        raise BadRequest("attachment data must be a base64 string")
    sha1 = hashlib.sha1()
    sha512 = hashlib.sha512()
    length = 0
    for start in range(0, len(data), DECODE_CHUNK):
        piece = data[start:start + DECODE_CHUNK]
        try:
            raw = base64.b64decode(piece, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("attachment data is not valid base64") from None
        sha1.update(raw)
        sha512.update(raw)
        spool.write(raw)
        length += len(raw)
    if length == 0:
        raise BadRequest("attachment is empty")
    spool.seek(0)
    return AttachmentInfo(
        filename="",
        length=length,
        sha1=sha1.hexdigest(),
        integrity="sha512-" + base64.b64encode(sha512.digest()).decode(),
        file_count=None,
        unpacked_size=None,
    )


async def spool_chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    while True:
        chunk = await asyncio.to_thread(spool.read, READ_CHUNK)
        if not chunk:
            return
        yield chunk


async def publish(
    packages: Packages,
    name: str,
    body: dict[str, Any],
    *,
    user: str,
    tarball_url: Any,
    email: str | None = None,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Publish the one new version in `body`; returns the new packument.

    The publisher is who authenticated, not what the body claims: `email`
    (from the user's profile) goes into `maintainers` and `_npmUser`.
    """
    if email:
        body["maintainers"] = [{"name": user, "email": email}]
    else:
        body.pop("maintainers", None)
    validate_package_name(name)
    versions = body.get("versions")
    attachments = body.get("_attachments")
    if not isinstance(versions, dict) or len(versions) != 1:
        raise BadRequest("a publish must carry exactly one version")
    if not isinstance(attachments, dict) or len(attachments) != 1:
        raise BadRequest("a publish must carry exactly one attachment (the tarball)")
    (version, _), = versions.items()
    (att_name, attachment), = attachments.items()
    if not isinstance(attachment, dict):
        raise BadRequest("attachment must be an object with data and length")
    filename = tarball_filename(name, version)
    if att_name.rsplit("/", 1)[-1] != filename:
        raise BadRequest(f"attachment {att_name!r} is not the tarball {filename} of {name}@{version}")

    # Refuse early (before decoding anything) what the current document refuses.
    current = await packages.read(name)
    if current is not None and is_mirrored(current.doc):
        current = None
    check_maintainer(current.doc if current else None, user)
    if current and version in current.doc.get("time", {}):
        raise Forbidden(f"cannot publish over the previously published version {version} of {name}")

    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        info = decode_attachment(attachment.pop("data", None), spool)
        facts = await inspect_in_pool(spool, limits or Limits())
        manifest = facts.manifest
        if manifest.get("name") != name or manifest.get("version") != version:
            raise Unprocessable(
                f"the tarball's package.json says {manifest.get('name')}@{manifest.get('version')},"
                f" not {name}@{version}"
            )
        sent = versions[version]
        if isinstance(sent, dict):  # (apply_publish refuses anything else)
            check_manifest_fields(sent)  # what was sent must be well-formed too
            versions[version] = from_tarball(sent, manifest)
        info = AttachmentInfo(
            filename=filename,
            length=info.length,
            sha1=info.sha1,
            integrity=info.integrity,
            file_count=facts.file_count,
            unpacked_size=facts.unpacked_size,
            has_shrinkwrap=facts.has_shrinkwrap,
        )
        stamp = now_iso()

        def apply(doc: dict[str, Any] | None) -> dict[str, Any]:
            if doc is not None and is_mirrored(doc):
                doc = None  # allowed to shadow the uplink: start a document of our own
            check_maintainer(doc, user)
            new, _ = apply_publish(
                doc, body, name=name, user=user, now=stamp,
                tarball_url=tarball_url, attachment=info,
            )
            return new

        # Validate against the current document before storing any bytes.
        apply(current.doc if current else None)
        async with packages.publishing(name, version) as lease:
            # Whoever published this version held the lease: read again now we hold it,
            # so a version that landed meanwhile is refused before its tarball is overwritten.
            current = await packages.read(name)
            apply(current.doc if current else None)
            spool.seek(0)
            await packages.store.write_tarball(name, filename, spool_chunks(spool))
            try:
                lease.check()
                new, _ = await packages.update_packument(name, apply)
            except BaseException:
                await _forget_tarball(packages, name, version, filename)
                raise
    try:
        await packages.record_package(new)
    except Exception:  # the packument is the truth; the list entry catches up on the next change
        LOG.exception("could not record %s in the package list", name)
    LOG.info("published %s@%s by %s", name, version, user)
    return new


async def _forget_tarball(packages: Packages, name: str, version: str, filename: str) -> None:
    """Delete the tarball of a publish that failed, unless its version landed after all.

    A storage error or a cancellation may come after the packument was
    written: the packument, read again, decides. When even that read fails
    the file stays, an orphan nobody is served (`tarballs.tarball_listed`) until
    `tarhold gc` sweeps it.
    """
    try:
        current = await asyncio.shield(packages.read(name))
        if current is not None and version in (current.doc.get("versions") or {}):
            LOG.warning("%s@%s was written although its publish failed; kept", name, version)
            return
        await asyncio.shield(packages.store.delete_tarball(name, filename))
    except NotFound:
        pass
    except Exception:
        LOG.exception("could not remove the tarball %s of a failed publish of %s", filename, name)
