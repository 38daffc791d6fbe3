"""`npm publish`: decode and verify the attachment, store it, then the packument.

Order matters for "no visible half state": the version is reserved (so no
other request can write the same tarball name), the tarball is stored, and
only then does the conditional packument write make the version visible. Any
failure after the tarball write removes it again and releases the version.

The steps are shared with staging (registry.domain.staging): `publish_target`
checks the body's shape, `verified_tarball` decodes, hashes and inspects the
attachment, `publish_change` is the pure change of the packument, and
`commit_version` stores the tarball and writes the packument inside the
version's lease. A version a stage holds (`STAGEVER#{name}` / its number) may
be published only by that stage's approval. A provenance bundle sent with the
tarball is taken out of the body first, checked against the tarball, and
stored with it (registry.domain.provenance).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO, Any

from registry.domain.clock import now_iso
from registry.domain.errors import BadRequest, ConflictError, Forbidden, Unprocessable
from registry.domain.manifest_fields import check_manifest_fields
from registry.domain.names import tarball_filename, validate_package_name
from registry.domain.packages import Packages, is_mirrored
from registry.domain.packed_manifest import from_tarball
from registry.domain.packument import AttachmentInfo, apply_publish, parse_version
from registry.domain.provenance import (
    Provenance,
    forget_attestations,
    store_attestation,
    take_bundle,
    verify_bundle,
)
from registry.domain.signing import SigningKey
from registry.domain.tarball import Limits, inspect_in_pool
from storage.base import NotFound, RegistryDatabase
from uplinks.documents import is_tombstone

LOG = logging.getLogger(__name__)

DECODE_CHUNK = 4 * 1024 * 1024  # base64 characters per step; a multiple of 4
SPOOL_IN_MEMORY = 8 * 1024 * 1024
READ_CHUNK = 256 * 1024
# `STAGEVER#{name}` / `{version_key}`: the stage (`{"id": ...}`) that holds a version number.
STAGED_PK = "STAGEVER#"

Doc = dict[str, Any]
Change = Callable[[Doc | None], Doc]


def maintainer_names(doc: dict[str, Any] | None) -> list[str]:
    if not doc:
        return []
    return [m.get("name") for m in doc.get("maintainers", []) if isinstance(m, dict)]


def check_maintainer(doc: dict[str, Any] | None, user: str | None) -> None:
    """Only maintainers may change a package that has versions, or publish a fully unpublished one.

    A fully unpublished name stays its last maintainers' (a stricter rule than
    the public registry's, which frees it after 24 hours): builds may still
    name it, and nobody else should be able to fill it. `user` None: the package's
    org gave the caller write (orgs.py), which stands in for the maintainer list.
    """
    if not doc or user is None or user in maintainer_names(doc):
        return
    if doc.get("versions"):
        raise Forbidden(f"you are not a maintainer of {doc.get('name')}; ask one to run npm owner add {user}")
    if is_tombstone(doc):
        raise Forbidden(
            f"{doc.get('name')} was unpublished; only its last maintainers may publish it again"
        )


# -- staged version numbers -----------------------------------------------------


def version_key(version: str) -> str:
    """The number a version holds: build metadata does not count (1.0.0+a is 1.0.0)."""
    parsed = parse_version(version)
    return version if parsed is None else str(parsed.replace(build=None))


async def staged_id(db: RegistryDatabase, name: str, version: str) -> str | None:
    """The id of the stage holding `name@version`, or None when no stage does."""
    try:
        item = await db.get(STAGED_PK + name, version_key(version))
    except NotFound:
        return None
    found = item.get("id")
    return found if isinstance(found, str) else "(unreadable)"


async def refuse_staged(db: RegistryDatabase, name: str, version: str, *, own: str | None = None) -> None:
    """409 when a stage holds `name@version`; with `own` (an approval), unless that stage holds it."""
    found = await staged_id(db, name, version)
    if own is not None and found != own:
        raise ConflictError(
            f"stage {own} no longer holds version {version} of {name} (rejected meanwhile, or its"
            " staging never finished): stage it again"
        )
    if found is not None and found != own:
        raise ConflictError(
            f"version {version} of {name} is staged (id {found}): approve or reject it with npm stage"
        )


# -- the body and its attachment ---------------------------------------------------


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


@dataclass(frozen=True)
class Target:
    """What a publish body says it publishes: the one version, its tarball's name, the attachment."""

    version: str
    filename: str
    attachment: dict[str, Any]


def publish_target(name: str, body: dict[str, Any], *, user: str, email: str | None) -> Target:
    """Check the shape of an `npm publish` body (400s) and make its publisher the caller.

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
    return Target(version, filename, attachment)


async def local_doc(packages: Packages, name: str) -> Doc | None:
    """The stored packument a publish changes: None when there is none, or it is a mirrored copy."""
    current = await packages.read(name)
    if current is None or is_mirrored(current.doc):
        return None
    return current.doc


@dataclass(frozen=True)
class Upload:
    """A verified attachment: the body (its manifest rebuilt from the tarball), the facts, the bytes."""

    name: str
    version: str
    body: dict[str, Any]
    info: AttachmentInfo
    spool: IO[bytes]

    def chunks(self) -> AsyncIterator[bytes]:
        self.spool.seek(0)
        return spool_chunks(self.spool)


@contextlib.asynccontextmanager
async def verified_tarball(
    name: str, body: dict[str, Any], target: Target, limits: Limits | None = None
) -> AsyncIterator[Upload]:
    """Decode the attachment into a spool (the body keeps no copy), inspect the tarball, and
    rebuild the version's manifest from it; the Upload is good inside the block."""
    version = target.version
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        info = decode_attachment(target.attachment.pop("data", None), spool)
        facts = await inspect_in_pool(spool, limits or Limits())
        manifest = facts.manifest
        if manifest.get("name") != name or manifest.get("version") != version:
            raise Unprocessable(
                f"the tarball's package.json says {manifest.get('name')}@{manifest.get('version')},"
                f" not {name}@{version}"
            )
        versions = body["versions"]
        sent = versions[version]
        if isinstance(sent, dict):  # (apply_publish refuses anything else)
            check_manifest_fields(sent)  # what was sent must be well-formed too
            versions[version] = from_tarball(sent, manifest)
        info = AttachmentInfo(
            filename=target.filename,
            length=info.length,
            sha1=info.sha1,
            integrity=info.integrity,
            file_count=facts.file_count,
            unpacked_size=facts.unpacked_size,
            has_shrinkwrap=facts.has_shrinkwrap,
        )
        yield Upload(name, version, body, info, spool)


def publish_change(
    name: str, body: dict[str, Any], info: AttachmentInfo, *, user: str, maintainer: str | None,
    tarball_url: Any, now: str, stage: dict[str, Any] | None = None, signer: SigningKey | None = None,
    trusted: dict[str, Any] | None = None, provenance: Provenance | None = None,
) -> Change:
    """The pure packument change that adds the version: published by `user`, allowed when
    `maintainer` maintains the package (the same user, but for an approved stage the
    approver); `stage` is recorded in the version's manifest as `_stage`; `signer` adds
    the registry's signature to its `dist.signatures` (signing.py); `trusted` (the trust
    configuration a trusted-publishing token came from) goes into `_npmUser.trustedPublisher`,
    as the public registry records it; `provenance` (a checked bundle) its `dist.attestations`."""

    def apply(doc: Doc | None) -> Doc:
        if doc is not None and is_mirrored(doc):
            doc = None  # allowed to shadow the uplink: start a document of our own
        check_maintainer(doc, maintainer)
        new, version = apply_publish(
            doc, body, name=name, user=user, now=now, tarball_url=tarball_url, attachment=info,
        )
        if stage is not None:
            new["versions"][version] = {**new["versions"][version], "_stage": dict(stage)}
        if trusted is not None:
            manifest = new["versions"][version]
            publisher = {**manifest.get("_npmUser", {}), "trustedPublisher": dict(trusted)}
            new["versions"][version] = {**manifest, "_npmUser": publisher}
        dist = new["versions"][version]["dist"]
        if signer is not None:
            dist = {**dist, "signatures": [signer.sign(name, version, info.integrity)]}
        if provenance is not None:
            dist = {**dist, "attestations": provenance.dist_entry(name, version, dist["tarball"])}
        new["versions"][version] = {**new["versions"][version], "dist": dist}
        return new

    return apply


async def commit_version(
    packages: Packages, name: str, version: str, apply: Change,
    chunks: Callable[[], AsyncIterable[bytes]], *, stage_id: str | None = None,
    provenance: Provenance | None = None,
) -> Doc:
    """Store the tarball (and the `provenance` bundle), then write the packument with `apply`;
    returns the new packument.

    Inside the version's lease (any instance): `apply` is checked against the
    document read now, a number a stage holds is refused (unless this is the
    approval of stage `stage_id`), and a failure after the tarball write
    removes the tarball (and the bundle) again.
    """
    filename = tarball_filename(name, version)
    async with packages.publishing(name, version) as lease:
        # Whoever published this version held the lease: read again now we hold it,
        # so a version that landed meanwhile is refused before its tarball is overwritten.
        current = await packages.read(name)
        apply(current.doc if current else None)
        await refuse_staged(packages.db, name, version, own=stage_id)
        await packages.store.write_tarball(name, filename, chunks())
        try:
            if provenance is not None:
                await store_attestation(packages.db, name, version, provenance)
            lease.check()
            new, _ = await packages.update_packument(name, apply)
        except BaseException:
            await _forget_tarball(packages, name, version, filename, attested=provenance is not None)
            raise
    try:
        await packages.record_package(new)
    except Exception:  # the packument is the truth; the list entry catches up on the next change
        LOG.exception("could not record %s in the package list", name)
    return new


async def publish(
    packages: Packages,
    name: str,
    body: dict[str, Any],
    *,
    user: str,
    tarball_url: Any,
    email: str | None = None,
    limits: Limits | None = None,
    trusted: dict[str, Any] | None = None,
    org_writer: bool = False,
) -> dict[str, Any]:
    """Publish the one new version in `body`, with its provenance bundle if it carries one;
    returns the new packument (`trusted`: see publish_change; `org_writer`: the package's org
    gives `user` write, so they need not be among its maintainers)."""
    sent_bundle = take_bundle(body)
    maintainer = None if org_writer else user
    target = publish_target(name, body, user=user, email=email)
    version = target.version
    # Refuse early (before decoding anything) what the current document refuses.
    current = await local_doc(packages, name)
    check_maintainer(current, maintainer)
    if current and version in current.get("time", {}):
        raise Forbidden(f"cannot publish over the previously published version {version} of {name}")
    await refuse_staged(packages.db, name, version)
    async with verified_tarball(name, body, target, limits) as upload:
        provenance = None if sent_bundle is None else verify_bundle(sent_bundle, name, version, upload.info.integrity)
        apply = publish_change(
            name, body, upload.info, user=user, maintainer=maintainer, tarball_url=tarball_url, now=now_iso(),
            signer=packages.signer, trusted=trusted, provenance=provenance,
        )
        apply(current)  # validate against the current document before storing any bytes
        new = await commit_version(packages, name, version, apply, upload.chunks, provenance=provenance)
    LOG.info("published %s@%s by %s", name, version, user)
    return new


async def _forget_tarball(packages: Packages, name: str, version: str, filename: str, *, attested: bool) -> None:
    """Delete the tarball (and, when `attested`, the bundle) of a publish that failed, unless
    its version landed after all.

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
        if attested:
            await asyncio.shield(forget_attestations(packages.db, name, [version]))
        await asyncio.shield(packages.store.delete_tarball(name, filename))
    except NotFound:
        pass
    except Exception:
        LOG.exception("could not remove the tarball %s of a failed publish of %s", filename, name)
