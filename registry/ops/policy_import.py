"""`tarhold policy import-osv`: OSV advisories (a directory or a .zip of them) into block rules.

The advisories are read first, bounded: at most MAX_FILES `*.json` files,
each at most MAX_ADVISORY_BYTES (a zip member's declared size is checked,
then it is read with that limit, so a member that inflates past what it
declares is cut off, not held). A file that cannot be read or is not an
advisory is skipped with a warning; the import goes on.

Then the database is brought in line, without touching any rule an admin
wrote: each advisory's rules are written when new or changed (another
`modified`, or another range), left alone when the same, and the stored
`osv` rules of an advisory that is withdrawn, or that no longer names them,
are deleted. Advisories absent from the files are left alone, so importing
one file does not undo the rest. One announcement at the end reaches every
instance (within the policy poll); a second import of the same files
writes nothing.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from registry.domain.errors import BadRequest, NotFoundError
from registry.domain.osv import (
    MAX_ADVISORY_BYTES,
    Advisory,
    AdvisoryError,
    older,
    parse_advisory,
)
from registry.domain.policy_store import (
    RULE_FIELDS,
    announce_change,
    list_rule_items,
    put_rule,
    remove_rule,
    rule_item,
)
from storage.base import RegistryDatabase

LOG = logging.getLogger(__name__)

MAX_FILES = 500_000
MAX_WARNINGS = 100
IMPORTED_BY = "osv-import"
SOURCE = "osv"
COMPARED = ("kind", *RULE_FIELDS, "advisory", "advisory_modified")
Wanted = dict[str, tuple[Advisory, dict[str, Any]]]


@dataclass
class ImportSummary:
    """What an import did; `skipped` counts files, advisories and entries left out (see `warnings`)."""

    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.skipped += 1
        LOG.info("osv import: %s", message)
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


# -- reading -------------------------------------------------------------------


def advisory_files(path: Path, summary: ImportSummary) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each advisory file under `path`: a directory, a .zip or one .json file.

    BadRequest when `path` is none of these.
    """
    if path.is_dir():
        yield from _directory_files(path, summary)
    elif path.is_file() and zipfile.is_zipfile(path):
        yield from _zip_files(path, summary)
    elif path.is_file() and path.suffix == ".json":
        data = _read_file(path, summary)
        if data is not None:
            yield str(path), data
    elif path.exists():
        raise BadRequest(f"{path}: not a directory, a .zip or a .json file of OSV advisories")
    else:
        raise BadRequest(f"{path}: no such file or directory")


def _directory_files(root: Path, summary: ImportSummary) -> Iterator[tuple[str, bytes]]:
    count = 0
    # os.walk does not follow links to directories: no loop, nothing outside `root` by surprise.
    for folder, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            count += 1
            if count > MAX_FILES:
                summary.warn(f"more than {MAX_FILES} files under {root}; the rest are not read")
                return
            path = Path(folder) / name
            data = _read_file(path, summary)
            if data is not None:
                yield str(path), data


def _read_file(path: Path, summary: ImportSummary) -> bytes | None:
    try:
        if path.stat().st_size > MAX_ADVISORY_BYTES:
            summary.warn(f"{path}: larger than {MAX_ADVISORY_BYTES} bytes")
            return None
        with path.open("rb") as handle:
            data = handle.read(MAX_ADVISORY_BYTES + 1)
    except OSError as exc:
        summary.warn(f"{path}: {exc.strerror or exc}")
        return None
    if len(data) > MAX_ADVISORY_BYTES:  # it grew since the stat
        summary.warn(f"{path}: larger than {MAX_ADVISORY_BYTES} bytes")
        return None
    return data


def _zip_files(path: Path, summary: ImportSummary) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BadRequest(f"{path}: not a readable zip: {exc}") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir() and info.filename.endswith(".json")]
        if len(members) > MAX_FILES:
            summary.warn(f"{path} holds {len(members)} .json files; only the first {MAX_FILES} are read")
            members = members[:MAX_FILES]
        for info in members:
            where = f"{path}:{info.filename}"
            if info.file_size > MAX_ADVISORY_BYTES:
                summary.warn(f"{where}: larger than {MAX_ADVISORY_BYTES} bytes")
                continue
            try:
                with archive.open(info) as member:
                    data = member.read(MAX_ADVISORY_BYTES + 1)
            except (OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
                summary.warn(f"{where}: cannot be read: {exc}")
                continue
            if len(data) > MAX_ADVISORY_BYTES:
                summary.warn(f"{where}: inflates past {MAX_ADVISORY_BYTES} bytes")
                continue
            yield where, data


def read_advisories(path: Path, summary: ImportSummary) -> dict[str, Advisory]:
    """Every advisory under `path` by id; of two with one id, the later `modified` wins."""
    advisories: dict[str, Advisory] = {}
    for name, data in advisory_files(path, summary):
        try:
            advisory = parse_advisory(data)
        except AdvisoryError as exc:
            summary.warn(f"{name}: {exc}")
            continue
        summary.read += 1
        for problem in advisory.problems:
            summary.warn(problem)
        known = advisories.get(advisory.id)
        if known is None or not older(advisory.modified, known.modified):
            advisories[advisory.id] = advisory
    return advisories


# -- writing -------------------------------------------------------------------


def same_rule(stored: dict[str, Any], item: dict[str, Any]) -> bool:
    return all(stored.get(key) == item.get(key) for key in COMPARED)


def wanted_rules(advisories: dict[str, Advisory], summary: ImportSummary) -> Wanted:
    """Rule id -> (advisory, spec); an id two advisories both derive is left to the first."""
    wanted: Wanted = {}
    for advisory in advisories.values():
        for rule_id, spec in advisory.rules:
            if rule_id in wanted:
                summary.warn(f"{advisory.id}: rule id {rule_id} is also {wanted[rule_id][0].id}'s; not imported")
                continue
            wanted[rule_id] = (advisory, spec)
    return wanted


def imported_from(item: dict[str, Any]) -> str | None:
    """The advisory id of a stored rule this importer wrote; None for any other rule."""
    advisory = item.get("advisory")
    return advisory if item.get("source") == SOURCE and isinstance(advisory, str) else None


def outdated(advisories: dict[str, Advisory], stored: dict[str, dict[str, Any]]) -> set[str]:
    """Ids of the advisories whose stored rules come from a later `modified`: an older file undoes nothing."""
    found = set()
    for item in stored.values():
        advisory = imported_from(item)
        if advisory in advisories and older(advisories[advisory].modified, str(item.get("advisory_modified", ""))):
            found.add(advisory)
    return found


async def import_advisories(
    db: RegistryDatabase, advisories: dict[str, Advisory], *, now: datetime, summary: ImportSummary
) -> ImportSummary:
    """Write, update and delete the `osv` rules these advisories make; announce once if anything changed."""
    stored = {str(item.get("id")): item for item in await list_rule_items(db)}
    stale = outdated(advisories, stored)
    wanted = wanted_rules({key: value for key, value in advisories.items() if key not in stale}, summary)
    summary.unchanged += sum(len(advisories[key].rules) for key in stale)
    # An advisory with an entry left out keeps the rules it made before: a block is not
    # lifted because its update could not be read.
    keep = stale | {advisory.id for advisory in advisories.values() if advisory.problems}
    for rule_id, (advisory, spec) in wanted.items():
        old = stored.get(rule_id)
        if old is not None and imported_from(old) != advisory.id:
            owner = old.get("advisory") or f"a {old.get('source', 'runtime')} rule"
            summary.warn(f"{advisory.id}: rule id {rule_id} is taken by {owner}; not imported")
            continue
        try:
            item = rule_item(
                spec, kind="block", by=IMPORTED_BY, source=SOURCE, now=now, rule_id=rule_id,
                extra={"advisory": advisory.id, "advisory_modified": advisory.modified},
            )
        except BadRequest as exc:
            summary.warn(f"{advisory.id}: {exc.message}")
            keep.add(advisory.id)
            continue
        if old is not None and same_rule(old, item):
            summary.unchanged += 1
            continue
        await put_rule(db, item, announce=False)
        if old is None:
            summary.added += 1
        else:
            summary.updated += 1
    for rule_id, old in stored.items():
        advisory_id = imported_from(old)
        if advisory_id not in advisories or advisory_id in keep or rule_id in wanted:
            continue
        try:
            await remove_rule(db, rule_id, announce=False)
        except NotFoundError:
            continue  # someone else removed it meanwhile
        summary.removed += 1
    if summary.changed:
        await announce_change(db)
    return summary
