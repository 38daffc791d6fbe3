"""Verdaccio's package documents as tarhold stores them: pure transforms.

Which uplink (if any) a document came from, the document cleaned of
Verdaccio's internals (local: tarball URLs as tarhold writes them; mirrored:
marked as `uplinks.mirror` marks its own, upstream tarball URLs kept), and the
merge with what tarhold already holds. No I/O: `importer` does that.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from registry.domain.clock import now_iso
from registry.domain.packages import MIRROR_MARK, is_mirrored
from registry.domain.packument import TIME_META, preferred_latest, tarball_file_of
from registry.domain.packument_views import rewrite_tarball_urls

VERDACCIO_INTERNALS = ("_uplinks", "_distfiles", "_attachments", "_rev")
Doc = dict[str, Any]


class Skip(Exception):
    """This package (or user) is left as it is; the message says why."""


class VersionConflict(Exception):
    """tarhold already has a different package under the name."""


def is_verdaccio_doc(doc: Doc) -> bool:
    """A document as Verdaccio stores it (not yet imported)."""
    return not is_mirrored(doc) and any(key in doc for key in ("_uplinks", "_distfiles"))


def cached_from(doc: Doc) -> tuple[str, dict[str, Any]] | None:
    """(uplink, its record) when Verdaccio fetched this document from an uplink, else None."""
    uplinks = doc.get("_uplinks")
    if not isinstance(uplinks, dict):
        return None
    answered = [(name, rec) for name, rec in uplinks.items() if isinstance(rec, dict) and rec.get("fetched")]
    if not answered:
        return None
    return max(answered, key=lambda pair: float(pair[1]["fetched"]))


def clean(doc: Doc, *, local: bool, base_url: str, uplink: str | None = None, etag: str | None = None) -> Doc:
    """A Verdaccio document as tarhold stores it: internals dropped, URLs as tarhold writes them."""
    distfiles = doc.get("_distfiles") if isinstance(doc.get("_distfiles"), dict) else {}
    new = {k: v for k, v in doc.items() if k not in VERDACCIO_INTERNALS and k != MIRROR_MARK}
    new["versions"] = {v: m for v, m in (doc.get("versions") or {}).items() if isinstance(m, dict)}
    new.setdefault("_id", doc.get("name"))
    new.setdefault("dist-tags", {})
    new.setdefault("time", {})
    if local:
        return rewrite_tarball_urls(new, base_url)
    # Mirrored: keep (or restore) the upstream tarball URLs the mirror fetches from.
    versions = {}
    for version, manifest in new["versions"].items():
        dist = dict(manifest.get("dist") or {})
        upstream = distfiles.get(tarball_file_of(new["name"], version, manifest))
        if isinstance(upstream, dict) and isinstance(upstream.get("url"), str):
            dist["tarball"] = upstream["url"]
        versions[version] = {**manifest, "dist": dist}
    new["versions"] = versions
    record = (doc.get("_uplinks") or {}).get(uplink) or {}
    new[MIRROR_MARK] = {
        "uplink": uplink, "etag": etag, "last_modified": None,
        "fetched": float(record.get("fetched", 0)) / 1000 if isinstance(record, dict) else 0.0,
        "imported": "verdaccio",
    }
    return new


def without_versions(doc: Doc, dropped: Iterable[str]) -> Doc:
    """`doc` without some versions; dist-tags pointing at them go, `latest` falls back."""
    dropped = set(dropped)
    if not dropped:
        return doc
    new = dict(doc)
    new["versions"] = {v: m for v, m in doc["versions"].items() if v not in dropped}
    new["time"] = {k: t for k, t in doc.get("time", {}).items() if k not in dropped}
    tags = {t: v for t, v in doc.get("dist-tags", {}).items() if v in new["versions"]}
    if "latest" not in tags and new["versions"]:
        tags["latest"] = preferred_latest(new["versions"])
    new["dist-tags"] = tags
    return new


def same_dist(a: Doc, b: Doc) -> bool:
    da, db = a.get("dist") or {}, b.get("dist") or {}
    keys = [k for k in ("shasum", "integrity") if da.get(k) and db.get(k)]
    return bool(keys) and all(da[k] == db[k] for k in keys)


def merge(current: Doc | None, incoming: Doc) -> tuple[Doc, list[str]]:
    """The document to store and the versions it adds; raises Skip or VersionConflict."""
    local = not is_mirrored(incoming)
    if current is None or is_verdaccio_doc(current):
        return incoming, list(incoming["versions"])
    if is_mirrored(current):
        if not local:
            raise Skip("tarhold mirrors it already")
        return incoming, list(incoming["versions"])  # a published package replaces a mirror
    if not local:
        raise Skip("published here; Verdaccio's cached copy is not imported over it")
    ours_versions = current.get("versions") or {}
    ours_time = set(current.get("time") or {}) - TIME_META
    differing = sorted(
        v for v, m in incoming["versions"].items()
        if (v in ours_versions and not same_dist(ours_versions[v], m))
        or (v not in ours_versions and v in ours_time)
    )
    if differing:
        raise VersionConflict(
            f"tarhold has a different {current['name']} (versions {', '.join(differing)} differ"
            " or were unpublished here)"
        )
    added = [v for v in incoming["versions"] if v not in ours_versions]
    if not added and not current.get("maintainers") and incoming.get("maintainers"):
        return {**current, "maintainers": incoming["maintainers"]}, []  # a re-run with --maintainer
    if not added:
        raise Skip("already imported")
    new = dict(current)
    new["versions"] = {**ours_versions, **{v: incoming["versions"][v] for v in added}}
    new["time"] = {**{v: t for v, t in incoming.get("time", {}).items() if v in added},
                   **current.get("time", {}), "modified": now_iso()}
    new["dist-tags"] = {**incoming.get("dist-tags", {}), **current.get("dist-tags", {})}
    new["dist-tags"] = {t: v for t, v in new["dist-tags"].items() if v in new["versions"]}
    return new, added


__all__ = [
    "Doc",
    "Skip",
    "VersionConflict",
    "cached_from",
    "clean",
    "is_verdaccio_doc",
    "merge",
    "same_dist",
    "without_versions",
]
