"""`tarhold gc --cached-older-than 90d`: forget mirrored packages nobody asked for.

A package is removed (packument and every tarball) only when its stored
document is a mirrored one (`_tarhold` mark, see uplinks.mirror) and it was
last requested before the cutoff; with no access recorded, the time the
mirror fetched it counts. A package published here is never touched. The
next request for a removed package simply fetches it from the uplink again.

Just before deleting, the packument is read again and must still be the same
mirrored document, so a package published here meanwhile is kept; a publish
landing in the moment between that check and the delete is the one window
left (run gc when publishes of names that shadow an uplink are rare).

`--orphans-older-than 1h` (the default) also sweeps orphans: a tarball no
version of its package's stored packument names (left by a publish whose
process died between writing the tarball and the packument, by a failed
unpublish cleanup, or under a tombstone or a package with no packument at
all), and the temp file of a tarball write that was killed. Both are never
served; gc deletes them once older than the grace period, because a publish
in progress writes its tarball before its packument. Just before deleting a
tarball, gc checks it is still the file it listed: a publish of that very
version may have written it again meanwhile.

Staged versions (`npm stage`, registry.domain.staging) are no orphans: the
staged tarball of every stage waiting for review, and any file under its
version's final name, stay; so does a mirrored package with a stage waiting.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from registry.domain.names import tarball_filename
from registry.domain.packages import MIRROR_MARK, is_mirrored
from registry.domain.packument import tarball_file_of
from registry.domain.staging import staged_files
from registry.domain.usage import ACCESS_PK, last_access
from storage.base import (
    NotFound,
    PackageStore,
    RegistryDatabase,
    StorageError,
    StoredFile,
)

LOG = logging.getLogger(__name__)

DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}
# A publish writes its tarball, then its packument: a tarball no packument
# lists may be a publish in progress, so gc waits this long before calling it
# an orphan. An hour is far longer than any publish or mirrored download.
ORPHAN_GRACE = "1h"


def parse_age(text: str) -> float:
    """Seconds in `90d`, `12h`, `2w`, `30m`, `45s`; a bare number is days. ValueError otherwise."""
    match = DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (say 90d, 12h, 2w)")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


# -- gc ---------------------------------------------------------------------------


@dataclass
class GcReport:
    """What gc removed (or would remove) and what it kept."""

    removed: list[tuple[str, float, int]] = field(default_factory=list)  # name, last used, files
    kept_local: int = 0
    kept_recent: int = 0
    failed: int = 0
    stale_stamps: int = 0  # access stamps of names with no package (any name can be asked for)
    orphans: list[tuple[str, str]] = field(default_factory=list)  # name, tarball no packument lists
    leftovers: list[tuple[str, str]] = field(default_factory=list)  # name, temp file of a killed write
    young_orphans: int = 0  # orphans and leftovers kept: younger than the grace period
    unreadable: set[str] = field(default_factory=set)  # packuments that are not JSON: left alone


async def collect(
    store: PackageStore,
    db: RegistryDatabase,
    *,
    older_than: float | None,
    orphans_older_than: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
    say: Callable[[str], None] = print,
) -> GcReport:
    """Remove mirrored packages not requested for `older_than` seconds (None: keep them all),
    then, unless `orphans_older_than` is None, orphans and leftovers older than that; report each one.
    """
    now = now if now is not None else time.time()
    report = GcReport()
    staged = await staged_files(db)  # read before listing: a stage made later is young
    if older_than is not None:
        await _forget_mirrored(store, db, now - older_than, dry_run, say, report, staged)
    if orphans_older_than is not None:
        await sweep_orphans(store, report, cutoff=now - orphans_older_than, dry_run=dry_run, say=say, staged=staged)
    return report


async def _forget_mirrored(
    store: PackageStore, db: RegistryDatabase, cutoff: float, dry_run: bool,
    say: Callable[[str], None], report: GcReport, staged: dict[str, set[str]],
) -> None:
    """Remove mirrored packages last used before `cutoff` (none with a stage waiting), and stale access stamps."""
    accessed = {name: at async for name, at in last_access(db)}
    seen: set[str] = set()
    async for name in store.package_names():
        seen.add(name)
        try:
            stored = await store.read_packument(name)
            doc = orjson.loads(stored.data)
        except NotFound:
            continue
        except (orjson.JSONDecodeError, ValueError):
            LOG.warning("gc: the packument of %s is not JSON; left alone", name)
            report.failed += 1
            report.unreadable.add(name)
            continue
        if not isinstance(doc, dict) or not is_mirrored(doc):
            report.kept_local += 1
            continue
        fetched = float(doc[MIRROR_MARK].get("fetched") or 0)
        used = max(accessed.get(name, 0.0), fetched)
        if used >= cutoff or name in staged:
            report.kept_recent += 1
            continue
        files = await store.list_files(name)
        when = time.strftime("%Y-%m-%d", time.gmtime(used)) if used else "never"
        verb = "would remove" if dry_run else "removing"
        say(f"{verb} {name} (mirrored, last used {when}): {len(files)} files")
        if dry_run:
            report.removed.append((name, used, len(files)))
            continue
        try:
            again = await store.read_packument(name)
        except NotFound:
            continue
        if again.token != stored.token:
            say(f"  kept {name}: it changed while gc looked at it")
            report.kept_recent += 1
            continue
        try:
            await store.delete_package(name)
        except Exception as exc:  # noqa: BLE001 - one package failing must not stop the sweep
            LOG.error("gc: could not remove %s: %s", name, exc)
            report.failed += 1
            continue
        try:
            await db.delete(ACCESS_PK, name)
        except NotFound:
            pass
        report.removed.append((name, used, len(files)))
    for name, at in accessed.items():
        if name not in seen and at < cutoff:
            report.stale_stamps += 1
            if not dry_run:
                try:
                    await db.delete(ACCESS_PK, name)
                except NotFound:
                    pass


# -- orphans ----------------------------------------------------------------------


async def sweep_orphans(
    store: PackageStore,
    report: GcReport,
    *,
    cutoff: float,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
    staged: dict[str, set[str]] | None = None,
) -> None:
    """Delete orphan tarballs and leftovers of killed writes last written before `cutoff` (epoch seconds).

    Every package with any file is looked at, with a packument or without.
    A file whose age the store cannot tell is kept, and so are the files
    `staged` names per package (`staging.staged_files`).
    """
    staged = staged or {}
    async for name in store.stored_package_names():
        try:
            await _sweep_package(store, name, cutoff, dry_run, say, report, staged.get(name, set()))
        except StorageError as exc:  # one package failing must not stop the sweep
            LOG.error("gc: could not sweep orphans of %s: %s", name, exc)
            report.failed += 1


async def _sweep_package(
    store: PackageStore, name: str, cutoff: float, dry_run: bool,
    say: Callable[[str], None], report: GcReport, staged: set[str],
) -> None:
    files = [
        f for f in await store.list_stored_files(name)
        if f.partial or (f.filename.endswith(".tgz") and f.filename not in staged)
    ]
    if not files:
        return
    # Read after listing: a tarball a publish wrote before this read is
    # either listed now, or young enough to be kept.
    listed = await listed_tarballs(store, name)
    if listed is None:
        if name not in report.unreadable:
            LOG.warning("gc: the packument of %s is not a packument; its files are left alone", name)
            report.unreadable.add(name)
            report.failed += 1
        return
    for file in files:
        if not file.partial and file.filename in listed:
            continue
        if file.modified is None or file.modified > cutoff:
            report.young_orphans += 1
            continue
        what = "leftover of an unfinished write" if file.partial else "orphan tarball"
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(file.modified))
        say(f"{'would remove' if dry_run else 'removing'} {what} {name}/{file.filename} (written {when})")
        if dry_run or await _delete_orphan(store, name, file, say):
            (report.leftovers if file.partial else report.orphans).append((name, file.filename))


async def listed_tarballs(store: PackageStore, name: str) -> set[str] | None:
    """The tarball file names the stored packument lists (none without one); None when unreadable.

    Both spellings count: the file its `dist.tarball` names, and the
    registry's own `{name}-{version}.tgz`, as the mirror and the tarball
    route accept either.
    """
    try:
        stored = await store.read_packument(name)
    except NotFound:
        return set()
    try:
        doc = orjson.loads(stored.data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    versions = doc.get("versions") or {}
    if not isinstance(versions, dict):
        return None
    listed: set[str] = set()
    for version, manifest in versions.items():
        listed.add(tarball_filename(name, version))
        listed.add(tarball_file_of(name, version, manifest))
    return listed


async def _delete_orphan(store: PackageStore, name: str, file: StoredFile, say: Callable[[str], None]) -> bool:
    """Delete one orphan or leftover; False when it is gone already or changed since the listing."""
    try:
        if file.partial:
            await store.delete_partial(name, file.filename)
            return True
        current = await store.stat_tarball(name, file.filename)
        if current.etag != file.etag or _seconds(current.modified) != _seconds(file.modified):
            say(f"  kept {name}/{file.filename}: it was written again while gc looked at it")
            return False
        await store.delete_tarball(name, file.filename)
    except NotFound:
        return False
    return True


def _seconds(modified: float | None) -> int | None:
    # A listing and a HEAD of one S3 object give its time to different precision.
    return None if modified is None else int(modified)
