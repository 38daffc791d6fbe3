"""Where a tarball GET gets its bytes: one typed answer, decided without HTTP.

`find_tarball` tries, in order: the bytes held in memory (re-checked against
storage once they are older than the TTL, since another worker may have
unpublished them), a redirect to the store (presigned URL or CDN), a local
file (sendfile), a stream from storage, and last a download from the uplink
while it is mirrored. The handler turns the answer into a response and does
nothing else; the access check happened once, before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.domain.caches import HeldTarball
from registry.domain.errors import BadGateway, BadRequest, NotFoundError
from registry.domain.names import is_safe_filename, parse_tarball_filename
from registry.domain.packages import Packages, is_mirrored
from storage.base import NotFound, TarballReader
from uplinks.base import PackageNotFound, UplinkError
from uplinks.mirror import AlreadyStored, Mirror

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldBytes:
    """A small tarball's bytes, held in memory (or just read to be held)."""

    body: bytes
    etag: str


@dataclass(frozen=True)
class Redirect:
    """The store serves the bytes itself: send the client there."""

    location: str


@dataclass(frozen=True)
class LocalFile:
    """A stored tarball on local disk: the kernel sends it (sendfile)."""

    path: Path


@dataclass(frozen=True)
class StoredStream:
    """An open stream of a stored tarball; the caller closes it (`async with reader`)."""

    reader: TarballReader


@dataclass(frozen=True)
class MirrorStream:
    """A tarball being fetched from its uplink and mirrored; its bytes as they arrive.

    The upstream answered (the first bytes are on their way); a failure after
    this shows as an UplinkError raised from `chunks`.
    """

    size: int | None
    chunks: AsyncIterator[bytes]


TarballAnswer = HeldBytes | Redirect | LocalFile | StoredStream | MirrorStream


async def find_tarball(
    packages: Packages, mirror: Mirror, name: str, filename: str, proxies: tuple[str, ...], via: str,
    *, who: str | None = None,
) -> TarballAnswer:
    """The answer for `GET /{name}/-/{filename}`; NotFoundError when nobody has it,
    Forbidden when the mirror policy hides its version (held or stored copies too)."""
    if not is_safe_filename(filename):
        raise BadRequest(f"invalid tarball file name {filename!r}")
    await check_policy(packages, mirror, name, filename, proxies, via, who)
    listed = await tarball_listed(packages, name, filename)
    if listed is False:  # a local package whose packument does not have this version
        raise NotFoundError(f"tarball {filename} of {name} not found")
    answer = await stored_tarball(packages, name, filename) if listed else None
    if answer is not None:
        return answer
    if proxies:
        try:
            return await mirror_tarball(mirror, name, filename, proxies, via)
        except AlreadyStored:
            # The download finished while we looked: storage has it now.
            answer = await stored_tarball(packages, name, filename)
            if answer is not None:
                return answer
    raise NotFoundError(f"tarball {filename} of {name} not found")


async def check_policy(
    packages: Packages, mirror: Mirror, name: str, filename: str, proxies: tuple[str, ...], via: str,
    who: str | None,
) -> None:
    """Refuse the tarball of a version the policy hides from `name`'s packument.

    Only a package some rule can touch pays for this: its packument (from
    memory, as a client just read it) and the cached verdict. When the
    packument cannot be had (uplinks down, nothing stored) the mirror's 503
    stands: without it the policy cannot be checked, so nothing is served.
    """
    policy = packages.policy
    if not policy.active or policy.policy_for(name).is_noop:
        return
    current = await mirror.packument(name, proxies, via)
    if current is not None:
        policy.check_tarball(name, filename, await packages.view(name, current), who=who)


async def tarball_listed(packages: Packages, name: str, filename: str) -> bool | None:
    """Whether the stored packument lists the version `filename` is the tarball of.

    True: serve it. False: a local package without that version; its stored
    file (if any) is an orphan of a publish that never finished, or of an
    unpublish, and is never served. None: there is no stored packument,
    so a stored file is an orphan too; only the uplinks may answer.
    Mirrored packages are the uplinks' to decide: True.
    """
    current = await packages.read(name, cached=True)
    if current is not None and is_mirrored(current.doc):
        return True
    if current is not None and _lists(current.doc, name, filename):
        return True
    # The cache may be older than a publish on another instance: ask storage.
    current = await packages.read(name)
    if current is None:
        return None
    return is_mirrored(current.doc) or _lists(current.doc, name, filename)


def _lists(doc: dict[str, Any], name: str, filename: str) -> bool:
    version = parse_tarball_filename(name, filename)
    versions = doc.get("versions")
    return version is not None and isinstance(versions, dict) and version in versions


async def stored_tarball(packages: Packages, name: str, filename: str) -> TarballAnswer | None:
    """The stored tarball, from memory, a redirect, sendfile or a stream; None if not stored."""
    store, held_tarballs = packages.store, packages.tarballs
    held = await confirmed_held(packages, name, filename)
    if held is not None:
        return HeldBytes(held.body, held.etag)
    if store.redirects_tarballs:
        location = await redirect_location(packages, name, filename)
        return None if location is None else Redirect(location)
    try:
        reader = await store.open_tarball(name, filename)
    except NotFound:
        return None
    if held_tarballs.fits(reader.size):
        async with reader:
            body = b"".join([chunk async for chunk in reader])
        held_tarballs.put(name, filename, body, reader.etag)
        return HeldBytes(body, reader.etag)
    path = store.local_path(name, filename)
    if path is not None:
        async with reader:
            pass  # sendfile opens the file itself
        return LocalFile(path)
    return StoredStream(reader)


async def confirmed_held(packages: Packages, name: str, filename: str) -> HeldTarball | None:
    """The tarball held in memory, if any; past its TTL only once storage confirms it
    (another worker may have unpublished it since)."""
    held_tarballs = packages.tarballs
    held = held_tarballs.get(name, filename)
    if held is None or held_tarballs.is_fresh(held):
        return held
    try:
        info = await packages.store.stat_tarball(name, filename)
    except NotFound:
        info = None
    if info is None or info.etag != held.etag:
        held_tarballs.forget(name, filename)
        return None
    held_tarballs.confirm(held)
    return held


async def still_held(packages: Packages, name: str, filename: str, held: HeldTarball) -> bool:
    """Whether `find_tarball` would answer with exactly `held` (and check nothing more):
    no policy can touch the package, its packument lists the version, and the bytes
    are still held, confirmed by storage once past their TTL. No uplink is asked."""
    policy = packages.policy
    if policy.active and not policy.policy_for(name).is_noop:
        return False
    if await tarball_listed(packages, name, filename) is not True:
        return False
    return await confirmed_held(packages, name, filename) is held


async def redirect_location(packages: Packages, name: str, filename: str) -> str | None:
    """Where a stored tarball may be fetched directly; None when it is not stored.

    The existence check (a HEAD) is remembered for the TTL like any cached read.
    """
    key = (name, filename)
    location = packages.locations.get(key)
    if location is None:
        try:
            await packages.store.stat_tarball(name, filename)
        except NotFound:
            return None
        location = await packages.store.tarball_location(name, filename)
        if location is None:
            return None
        packages.locations[key] = location
    return location


async def mirror_tarball(
    mirror: Mirror, name: str, filename: str, proxies: tuple[str, ...], via: str
) -> MirrorStream:
    """Join (or start) the uplink download; wait until it answered. Raises AlreadyStored
    when the file reached storage meanwhile, NotFoundError or BadGateway when the
    uplink does not have it or failed before sending anything."""
    download = await mirror.tarball(name, filename, proxies, via)
    if download is None:
        raise NotFoundError(f"tarball {filename} of {name} not found")
    chunks = download.follow()
    try:
        await download.started.wait()
        if download.error is not None and download.written == 0:
            raise download.error
    except UplinkError as exc:
        await chunks.aclose()
        if isinstance(exc, PackageNotFound):
            raise NotFoundError(f"tarball {filename} of {name} not found upstream") from None
        raise BadGateway(f"could not fetch {filename} of {name}: {exc}") from None
    return MirrorStream(download.size, chunks)
