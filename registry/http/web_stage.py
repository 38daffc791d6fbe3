"""The package page's staged versions (`npm stage`), for those who may review them.

A signed-in maintainer of the package (or whoever staged a version) sees,
below the package, each version waiting for `npm stage approve`: who staged
it and when, the dist-tag it gets, the commands that decide it, the files in
its tarball and a unified diff of its package.json against the latest
published version. Everyone else sees nothing of them, as the API shows
nothing (registry.http.routes_stage). Bounded: the first MAX_SHOWN stages,
the first DETAILED of them with files (MAX_FILES) and diff (MAX_DIFF_LINES);
every value passes through `esc`.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from typing import IO, Any

from aiohttp import web

from registry.domain.errors import PublishError
from registry.domain.publish import maintainer_names
from registry.domain.staging import StageRecord, all_stages, may_review, staged_body
from registry.domain.tarball import INSPECTORS, MAX_ENTRIES, BoundedGunzip, Limits
from registry.http.appkeys import CONFIG, DATABASE, PACKAGES
from registry.http.auth import identity_of
from registry.http.web_pages import day, esc
from storage.base import NotFound, PackageStore

MAX_SHOWN = 10
DETAILED = 5
MAX_FILES = 100
MAX_DIFF_LINES = 400
SPOOL_IN_MEMORY = 8 * 1024 * 1024
# Registry bookkeeping, not package.json: left out of the diff.
NOT_PACKAGE_JSON = frozenset({"dist", "maintainers", "readme", "readmeFilename", "gitHead"})


@dataclass(frozen=True)
class Listing:
    """The first files of a staged tarball (path below `package/`, size), how many there are,
    and why the listing stopped early, if it did."""

    files: list[tuple[str, int]]
    total: int
    error: str | None = None


def tarball_files(source: IO[bytes], limits: Limits, shown: int) -> Listing:
    """The regular files of a gzipped npm tarball, read as a stream and bounded as inspection is."""
    files: list[tuple[str, int]] = []
    total = 0
    try:
        with tarfile.open(mode="r|", fileobj=BoundedGunzip(source, limits)) as archive:
            for entries, member in enumerate(archive, start=1):
                if entries > MAX_ENTRIES:
                    return Listing(files, total, f"more than {MAX_ENTRIES} entries")
                if member.isfile():
                    total += 1
                    if len(files) < shown:
                        files.append((member.name.split("/", 1)[-1], member.size))
    except (PublishError, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        return Listing(files, total, str(exc))
    return Listing(files, total)


async def staged_listing(store: PackageStore, record: StageRecord, limits: Limits, shown: int) -> Listing:
    """`tarball_files` of a staged tarball, spooled first (the inspectors' threads read it)."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        try:
            async with await store.open_tarball(record.name, record.filename) as reader:
                async for chunk in reader:
                    spool.write(chunk)
        except NotFound:
            return Listing([], 0, "the staged tarball is gone")
        spool.seek(0)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(INSPECTORS, tarball_files, spool, limits, shown)


def package_json_lines(manifest: Any) -> list[str]:
    """A manifest's package.json fields, pretty-printed with sorted keys."""
    fields = {
        k: v for k, v in (manifest if isinstance(manifest, dict) else {}).items()
        if not k.startswith("_") and k not in NOT_PACKAGE_JSON
    }
    return json.dumps(fields, indent=2, sort_keys=True, ensure_ascii=False, default=str).splitlines()


def manifest_diff(old: Any, old_version: str | None, new: Any, new_version: str) -> list[str]:
    """The unified diff of package.json from the latest published version to the staged one (bounded)."""
    lines = list(difflib.unified_diff(
        package_json_lines(old), package_json_lines(new),
        fromfile=f"package.json {old_version}" if old_version else "(no published version)",
        tofile=f"package.json {new_version} (staged)", lineterm="",
    ))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"… {len(lines) - MAX_DIFF_LINES} more lines"]
    return lines


def diff_html(lines: list[str]) -> str:
    if not lines:
        return '<p class="empty">package.json is the same as the latest version\'s.</p>'
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    rows = "".join(
        f'<span class="{"file" if line[:3] in ("---", "+++") else kinds.get(line[:1], "same")}">{esc(line)}</span>\n'
        for line in lines
    )
    return f'<pre class="diff"><code>{rows}</code></pre>'


def files_html(listing: Listing) -> str:
    items = "".join(f"<li><code>{esc(path)}</code> <small>{size} B</small></li>" for path, size in listing.files)
    more = listing.total - len(listing.files)
    notes = f"<p>and {more} more files</p>" if more > 0 else ""
    if listing.error:
        notes += f'<p class="error">Could not read the whole tarball: {esc(listing.error)}</p>'
    return f'<h4>Files ({listing.total})</h4><ul class="files">{items}</ul>{notes}'


def stage_html(record: StageRecord, details: str) -> str:
    return (
        f'<li class="stage"><h3>{esc(record.version)} <span class="badge">{esc(record.tag)}</span></h3>'
        f"<p>Staged by <strong>{esc(record.actor)}</strong> {day(record.created)} · id <code>{esc(record.id)}</code>"
        f" · shasum <code>{esc(record.shasum)}</code></p>"
        f"<pre><code>npm stage approve {esc(record.id)}\nnpm stage reject {esc(record.id)}</code></pre>"
        f"{details}</li>"
    )


async def staged_section(request: web.Request, name: str, doc: dict[str, Any]) -> str:
    """The section listing `name`'s staged versions the visitor may review; "" when there are none."""
    identity = identity_of(request)
    if identity is None:
        return ""
    maintainers = maintainer_names(doc)
    db = request.app[DATABASE]
    records = [r for r in await all_stages(db) if r.name == name and may_review(r, identity.user, maintainers)]
    if not records:
        return ""
    versions = doc.get("versions") if isinstance(doc.get("versions"), dict) else {}
    latest = (doc.get("dist-tags") or {}).get("latest") if isinstance(doc.get("dist-tags"), dict) else None
    latest = latest if latest in versions else None
    limits = Limits(max_unpacked=request.app[CONFIG].max_unpacked_size)
    items = []
    for index, record in enumerate(records[:MAX_SHOWN]):
        details = ""
        if index < DETAILED:
            stored = await staged_body(db, record)
            staged = (stored[0].get("versions") or {}).get(record.version) if stored else None
            listing = await staged_listing(request.app[PACKAGES].store, record, limits, MAX_FILES)
            diff = diff_html(
                manifest_diff(versions.get(latest) if latest else None, latest, staged, record.version)
            ) if isinstance(staged, dict) else '<p class="error">Its manifest was not stored: reject it.</p>'
            details = files_html(listing) + "<h4>package.json</h4>" + diff
        items.append(stage_html(record, details))
    more = f"<p>and {len(records) - MAX_SHOWN} more: <code>npm stage list {esc(name)}</code></p>" if len(records) > MAX_SHOWN else ""
    return (
        f'<section class="staged"><h2>Staged versions ({len(records)})</h2>'
        "<p>Waiting for a maintainer's review; nobody else sees them, and nothing installs them before approval.</p>"
        f'<ul class="stages">{"".join(items)}</ul>{more}</section>'
    )
