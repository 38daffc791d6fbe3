"""Staged publishing (`npm stage`): a version uploaded now, published when a maintainer approves.

A stage is the `npm publish` body, checked exactly as a publish is
(registry.domain.publish), kept aside until a maintainer approves or
rejects it. Three things hold it:

- the record, `STAGE` / `{id}` (a UUID): who staged which version with which
  dist-tag, when, and the tarball's hashes; small, and what lists show;
- the reservation, `STAGEVER#{name}` / `{version}`: `{"id", "doc"}`, written
  with `if_absent`, so one stage holds a number on every instance, and the
  publish path refuses it (`publish.refuse_staged`). `doc` is the body
  without its attachment, zlib-compressed (at most MAX_DOC_BYTES, below
  DynamoDB's item size);
- the tarball, in the package store beside the package's other files under
  `{name}-{version}_staged-{id}.tgz`. Not under its final name: a mirrored
  package serves any stored file its uplink's document may list, a mirror
  fetch of that number would overwrite it, and an unpublish deletes every
  file named like a version's tarball. The `_staged-` name is no version's
  (`_` is not allowed in semver), so no tarball GET, mirror, unpublish or
  publish ever touches it; approval copies it to the final name, checking
  its sha512 on the way.

The record is written before the reservation, so a process that dies in
between leaves a record without a reservation: listed, never approvable,
and removed by a reject. Stages carry no TTL: they wait for a decision.
At most MAX_STAGES_PER_PACKAGE wait per package.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from registry.domain.clock import now_iso
from registry.domain.errors import (
    BadRequest,
    ConflictError,
    NotFoundError,
    PayloadTooLarge,
)
from registry.domain.names import tarball_filename
from registry.domain.packages import Packages
from registry.domain.packument import AttachmentInfo
from registry.domain.publish import (
    STAGED_PK,
    Doc,
    check_maintainer,
    commit_version,
    local_doc,
    publish_change,
    publish_target,
    refuse_staged,
    verified_tarball,
    version_key,
)
from registry.domain.rules import PackageRule
from registry.domain.tarball import Limits
from storage.base import Conflict, NotFound, PackageStore, RegistryDatabase

LOG = logging.getLogger(__name__)

STAGE_PK = "STAGE"
NOT_FOUND = "Not Found - No staged package version found with the provided ID."
MAX_STAGES_PER_PACKAGE = 100
MAX_DOC_BYTES = 192 * 1024  # compressed; base64 makes it 256 KB, under DynamoDB's 400 KB per item
MAX_DOC_INFLATED = 64 * 1024 * 1024
STAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def staging_required(rule: PackageRule | None, settings: dict[str, Any]) -> bool:
    """Whether a package may be published only through staging (a direct publish is refused):
    its `packages:` rule says `publish_staged: true`, or its maintainers set
    `publish_requires_stage` on it (package_settings)."""
    return (rule is not None and rule.publish_staged) or bool(settings.get("stage_required"))


def parse_stage_id(text: str) -> str:
    """The stage id in a URL, lowercased; 400 unless it is a UUID (npm checks the same)."""
    value = text.lower()
    if not STAGE_ID.fullmatch(value):
        raise BadRequest(f"invalid stage id {text[:64]!r}: a stage id is a UUID")
    return value


def staged_filename(name: str, version: str, stage_id: str) -> str:
    """Where a staged tarball waits: no version's tarball name (see the module docstring)."""
    return tarball_filename(name, version)[: -len(".tgz")] + f"_staged-{stage_id}.tgz"


@dataclass(frozen=True)
class StageRecord:
    """A staged version as the `STAGE` item stores it."""

    id: str
    name: str
    version: str
    tag: str
    created: str
    actor: str
    shasum: str
    integrity: str
    size: int
    file_count: int | None = None
    unpacked_size: int | None = None

    @property
    def filename(self) -> str:
        return staged_filename(self.name, self.version, self.id)

    def as_item(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_item(cls, item: Any) -> StageRecord | None:
        """The record in a stored item; None for anything that is not one (never raises)."""
        if not isinstance(item, dict):
            return None
        texts = ("id", "name", "version", "tag", "created", "actor", "shasum", "integrity")
        if not all(isinstance(item.get(key), str) for key in texts) or not isinstance(item.get("size"), int):
            return None
        if not STAGE_ID.fullmatch(item["id"]):
            return None
        counts = {key: item.get(key) if isinstance(item.get(key), int) else None for key in ("file_count", "unpacked_size")}
        return cls(**{key: item[key] for key in texts}, size=item["size"], **counts)

    def public(self) -> dict[str, Any]:
        """What `npm stage list|view` shows (npm's StagePackageVersion)."""
        return {
            "id": self.id, "packageName": self.name, "version": self.version, "tag": self.tag,
            "createdAt": self.created, "actor": self.actor, "actorType": "user",
            "shasum": self.shasum, "integrity": self.integrity, "status": "staged",
        }


def may_review(record: StageRecord, user: str, maintainers: list[str]) -> bool:
    """Who sees a stage (and may reject it): its package's maintainers, and whoever staged it."""
    return user == record.actor or user in maintainers


# -- the stored body ------------------------------------------------------------


def pack_doc(body: Doc, info: AttachmentInfo) -> str:
    """The body (attachment data already taken out) and the tarball's facts, compressed; 413 past the bound."""
    packed = zlib.compress(orjson.dumps({"body": body, "attachment": asdict(info)}), 6)
    if len(packed) > MAX_DOC_BYTES:
        raise PayloadTooLarge(
            f"the staged metadata (manifest and readme) compresses to {len(packed)} bytes; at most"
            f" {MAX_DOC_BYTES} can wait for review"
        )
    return base64.b64encode(packed).decode()


def unpack_doc(text: Any) -> tuple[Doc, AttachmentInfo] | None:
    """What `pack_doc` stored; None for anything else."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(text, validate=True), MAX_DOC_INFLATED)
        doc = orjson.loads(raw)
        return doc["body"], AttachmentInfo(**doc["attachment"])
    except (TypeError, ValueError, KeyError, binascii.Error, zlib.error, orjson.JSONDecodeError):
        return None


async def staged_body(db: RegistryDatabase, record: StageRecord) -> tuple[Doc, AttachmentInfo] | None:
    """The stored body of a stage that holds its version; None when it does not (any more)."""
    try:
        item = await db.get(STAGED_PK + record.name, version_key(record.version))
    except NotFound:
        return None
    return unpack_doc(item.get("doc")) if item.get("id") == record.id else None


# -- reading ----------------------------------------------------------------------


async def get_stage(db: RegistryDatabase, stage_id: str) -> StageRecord:
    """The stage with this id; NotFoundError (npm's wording) when there is none."""
    try:
        record = StageRecord.from_item(await db.get(STAGE_PK, stage_id))
    except NotFound:
        record = None
    if record is None:
        raise NotFoundError(NOT_FOUND)
    return record


async def all_stages(db: RegistryDatabase) -> list[StageRecord]:
    """Every stage waiting for review, most recent first."""
    records = [r async for _, item in db.query(STAGE_PK) if (r := StageRecord.from_item(item)) is not None]
    records.sort(key=lambda r: (r.created, r.id), reverse=True)
    return records


async def staged_files(db: RegistryDatabase) -> dict[str, set[str]]:
    """Per package, the files stages keep: each one's staged tarball, and its version's final name."""
    kept: dict[str, set[str]] = {}
    for record in await all_stages(db):
        kept.setdefault(record.name, set()).update({record.filename, tarball_filename(record.name, record.version)})
    return kept


# -- staging -------------------------------------------------------------------------


def _no_url(name: str, filename: str) -> str:
    return f"/{name}/-/{filename}"  # validation only: approval writes the real URL


def _check_stageable(current: Doc | None, name: str, version: str, user: str) -> None:
    check_maintainer(current, user)
    if current and (version in (current.get("time") or {}) or version in (current.get("versions") or {})):
        raise ConflictError(f"version {version} of {name} is already published; stage a new version")


async def _check_room(db: RegistryDatabase, name: str) -> None:
    waiting = sum(1 for record in await all_stages(db) if record.name == name)
    if waiting >= MAX_STAGES_PER_PACKAGE:
        raise ConflictError(
            f"{name} has {waiting} staged versions waiting for review (at most {MAX_STAGES_PER_PACKAGE});"
            " approve or reject some first"
        )


async def stage(
    packages: Packages, name: str, body: Doc, *, user: str, email: str | None = None,
    limits: Limits | None = None,
) -> StageRecord:
    """Check `body` as `npm publish` would, store its tarball aside and hold its version number."""
    db = packages.db
    target = publish_target(name, body, user=user, email=email)
    version = target.version
    current = await local_doc(packages, name)
    _check_stageable(current, name, version, user)
    await refuse_staged(db, name, version)
    await _check_room(db, name)
    stamp = now_iso()
    async with verified_tarball(name, body, target, limits) as upload:
        apply = publish_change(name, body, upload.info, user=user, maintainer=user, tarball_url=_no_url, now=stamp)
        apply(current)  # every refusal a publish would give, before storing anything
        record = StageRecord(
            id=str(uuid.uuid4()), name=name, version=version, tag=next(iter(body.get("dist-tags") or {}), "latest"),
            created=stamp, actor=user, shasum=upload.info.sha1, integrity=upload.info.integrity,
            size=upload.info.length, file_count=upload.info.file_count, unpacked_size=upload.info.unpacked_size,
        )
        doc = pack_doc(body, upload.info)
        await packages.store.write_tarball(name, record.filename, upload.chunks())
    claimed = False
    try:
        async with packages.publishing(name, version) as lease:
            current = await local_doc(packages, name)
            _check_stageable(current, name, version, user)
            apply(current)
            await _check_room(db, name)
            await db.put(STAGE_PK, record.id, record.as_item(), if_absent=True)
            try:
                await db.put(STAGED_PK + name, version_key(version), {"id": record.id, "doc": doc}, if_absent=True)
            except Conflict:
                await refuse_staged(db, name, version)  # 409 naming the stage that holds it
                raise ConflictError(f"version {version} of {name} was staged and released meanwhile; try again") from None
            claimed = True
            lease.check()
    except BaseException:
        await asyncio.shield(_undo(packages, record, claimed))
        raise
    LOG.info("staged %s@%s by %s (stage %s)", name, version, user, record.id)
    return record


async def _undo(packages: Packages, record: StageRecord, claimed: bool) -> None:
    """Remove what a failed stage wrote: its record, its reservation if it got one, its tarball."""
    try:
        if claimed:
            await _release(packages.db, record)
        await _forget(packages, record)
    except Exception:
        LOG.exception("could not clean up the failed stage %s of %s", record.id, record.name)


async def _release(db: RegistryDatabase, record: StageRecord) -> None:
    """Delete the reservation of `record`'s version, when it is this stage's."""
    key = version_key(record.version)
    try:
        item = await db.get(STAGED_PK + record.name, key)
        if item.get("id") == record.id:
            await db.delete(STAGED_PK + record.name, key, if_ver=item["ver"])
    except (NotFound, Conflict):
        pass


async def _forget(packages: Packages, record: StageRecord) -> None:
    """Delete the record, then the staged tarball (gc sweeps it when this fails)."""
    try:
        await packages.db.delete(STAGE_PK, record.id)
    except NotFound:
        pass
    try:
        await packages.store.delete_tarball(record.name, record.filename)
    except NotFound:
        pass


# -- deciding -------------------------------------------------------------------------


async def reject(packages: Packages, record: StageRecord) -> None:
    """Delete the stage: reservation, record and tarball. Under the version's lease, so an
    approval under way finishes first (and this then finds nothing) or waits for this."""
    async with packages.publishing(record.name, record.version):
        await get_stage(packages.db, record.id)  # 404 when approved or rejected meanwhile
        await _release(packages.db, record)
        await _forget(packages, record)
    LOG.info("rejected stage %s of %s@%s", record.id, record.name, record.version)


async def staged_bytes(store: PackageStore, record: StageRecord) -> AsyncIterator[bytes]:
    """The staged tarball's bytes; raises (so nothing is stored) when it is gone or not what was staged."""
    try:
        reader = await store.open_tarball(record.name, record.filename)
    except NotFound:
        raise ConflictError(f"the staged tarball of {record.name}@{record.version} is gone: reject and stage again") from None
    sha512 = hashlib.sha512()
    async with reader:
        async for chunk in reader:
            sha512.update(chunk)
            yield chunk
    if "sha512-" + base64.b64encode(sha512.digest()).decode() != record.integrity:
        raise ConflictError(f"the staged tarball of {record.name}@{record.version} changed: reject and stage again")


async def approve(packages: Packages, record: StageRecord, *, approver: str, tarball_url: Any) -> Doc:
    """Publish the staged version, with its dist-tag, through the one publish path; returns the packument.

    `_npmUser` stays the stager (who built it); the version's manifest also
    records the review: `_stage: {id, stagedBy, stagedAt, approvedBy, approvedAt}`.
    The approver must maintain the package (for a new one, anyone the rules let publish it).
    """
    stored = await staged_body(packages.db, record)
    if stored is None:
        raise ConflictError(
            f"stage {record.id} of {record.name}@{record.version} does not hold its version (its staging"
            " never finished): reject it and stage again"
        )
    body, info = stored
    stamp = now_iso()
    review = {
        "id": record.id, "stagedBy": record.actor, "stagedAt": record.created,
        "approvedBy": approver, "approvedAt": stamp,
    }
    apply = publish_change(
        record.name, body, info, user=record.actor, maintainer=approver, tarball_url=tarball_url,
        now=stamp, stage=review, signer=packages.signer,
    )
    apply(await local_doc(packages, record.name))
    new = await commit_version(
        packages, record.name, record.version, apply, lambda: staged_bytes(packages.store, record),
        stage_id=record.id,
    )
    try:
        await _release(packages.db, record)
        await _forget(packages, record)
    except Exception:  # published: what is left is a record that can no longer be approved
        LOG.exception("could not remove stage %s after approving it", record.id)
    LOG.info("approved stage %s: %s@%s by %s", record.id, record.name, record.version, approver)
    return new
