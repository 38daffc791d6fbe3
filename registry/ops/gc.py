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
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from registry.domain.packages import MIRROR_MARK, is_mirrored
from registry.domain.usage import ACCESS_PK, last_access
from storage.base import NotFound, PackageStore, RegistryDatabase

LOG = logging.getLogger(__name__)

DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}


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


async def collect(
    store: PackageStore,
    db: RegistryDatabase,
    *,
    older_than: float,
    dry_run: bool = False,
    now: float | None = None,
    say: Callable[[str], None] = print,
) -> GcReport:
    """Remove mirrored packages not requested for `older_than` seconds; report each one."""
    cutoff = (now if now is not None else time.time()) - older_than
    accessed = {name: at async for name, at in last_access(db)}
    report = GcReport()
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
            continue
        if not isinstance(doc, dict) or not is_mirrored(doc):
            report.kept_local += 1
            continue
        fetched = float(doc[MIRROR_MARK].get("fetched") or 0)
        used = max(accessed.get(name, 0.0), fetched)
        if used >= cutoff:
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
    return report
