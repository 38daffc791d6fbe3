"""Packument writes other than publish: pure functions, dicts in and new dicts out.

`apply_update` (a `PUT /{name}/-rev/{rev}`: deprecate, unpublish of versions,
owners, stars), `unpublish_all`, `set_dist_tag`, `remove_dist_tag`. Like
packument.py, they never mutate their inputs and refuse with `PublishError`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from registry.domain import names
from registry.domain.errors import PublishError
from registry.domain.packument import (
    Doc,
    UpdateResult,
    check_body_name,
    copy_doc,
    hoist,
    preferred_latest,
    tarball_file_of,
)


def _same_dist(stored: Any, incoming: Any) -> bool:
    """Equal apart from the tarball and attestations URLs, which GET rewrote on the way out."""
    if not isinstance(stored, dict) or not isinstance(incoming, dict):
        return bool(stored == incoming)

    def filename(dist: dict[str, Any]) -> str:
        return urlsplit(str(dist.get("tarball", ""))).path.rsplit("/", 1)[-1]

    def rest(dist: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in dist.items() if k != "tarball"}
        if isinstance(kept.get("attestations"), dict):
            kept["attestations"] = {k: v for k, v in kept["attestations"].items() if k != "url"}
        return kept

    return rest(stored) == rest(incoming) and filename(stored) == filename(incoming)


def _maintainers(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise PublishError(400, "maintainers must be a list")
    result: dict[str, dict[str, str]] = {}
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise PublishError(400, "every maintainer needs a name")
        person = {"name": entry["name"]}
        if isinstance(entry.get("email"), str):
            person["email"] = entry["email"]
        result.setdefault(person["name"], person)
    if not result:
        raise PublishError(400, "a package must keep at least one maintainer")
    return list(result.values())


def apply_update(current: Doc, body: Doc, *, now: str) -> UpdateResult:
    """Apply a `PUT /{name}/-rev/{rev}` (or a deprecate PUT) body to `current`.

    The npm CLI sends the whole packument back (deprecate, unpublish of one
    version) or only `_id`/`_rev` and the field it changes (`npm owner` sends
    `maintainers`, `npm star` sends `users`). A field missing from the body
    stays as it is. Versions missing from a `versions` the body does carry are
    unpublished: they leave `versions` but stay in `time`, so they can never
    be published again. Of an existing version only `deprecated` may change
    (a falsy value undeprecates); a changed `dist` or an added version is
    refused (400); other manifest edits are ignored. dist-tags pointing at
    removed versions are dropped, and `latest` falls back to the highest
    remaining release. Removing every version leaves a tombstone, as
    `unpublish_all` does. A version missing from the body that was published
    after the body's `time.modified` (npm sends back what it read) was
    published after the client read the document: 409, rather than
    unpublishing it unseen.
    """
    if not isinstance(body, dict):
        raise PublishError(400, "the body must be a JSON object")
    name = current["name"]
    check_body_name(body, name)
    if not current.get("versions"):
        raise PublishError(404, f"package {name} not found")
    doc = copy_doc(current)
    incoming_versions = body.get("versions")
    if incoming_versions is not None and not isinstance(incoming_versions, dict):
        raise PublishError(400, "versions must be an object")
    removed: list[str] = []
    if incoming_versions is not None:
        added = sorted(set(incoming_versions) - set(current.get("versions") or {}))
        if added:
            raise PublishError(400, f"versions can only be added by npm publish: {', '.join(added)}")
        read_at = _read_at(body)
        published = current.get("time") or {}
        for version, stored in (current.get("versions") or {}).items():
            if version not in incoming_versions:
                at = published.get(version)
                if read_at is not None and isinstance(at, str) and at > read_at:
                    # Published after the client read the document: not its to remove.
                    raise PublishError(
                        409, f"{name} changed since it was read ({version} was published meanwhile);"
                        " run the command again"
                    )
                del doc["versions"][version]
                removed.append(version)
                continue
            incoming = incoming_versions[version]
            if not isinstance(incoming, dict):
                raise PublishError(400, f"the manifest of {version} must be an object")
            if "dist" in incoming and not _same_dist(stored.get("dist"), incoming["dist"]):
                raise PublishError(400, f"the dist of the published version {version} cannot be changed")
            if "deprecated" in incoming and incoming["deprecated"] != stored.get("deprecated"):
                message = incoming["deprecated"]
                if message and not isinstance(message, str):
                    raise PublishError(400, f"deprecated of {version} must be a string")
                manifest = dict(stored)
                if message:
                    manifest["deprecated"] = message
                else:
                    manifest.pop("deprecated", None)
                doc["versions"][version] = manifest

    if "maintainers" in body:
        doc["maintainers"] = _maintainers(body["maintainers"])
    if isinstance(body.get("users"), dict):
        doc["users"] = dict(body["users"])

    if not doc["versions"]:
        return unpublish_all(current, now=now)

    tags = body.get("dist-tags", current.get("dist-tags") or {})
    if not isinstance(tags, dict):
        raise PublishError(400, "dist-tags must be an object")
    old_tags = current.get("dist-tags") or {}
    new_tags: dict[str, str] = {}
    for tag, target in tags.items():
        if not isinstance(target, str):
            raise PublishError(400, f"dist-tag {tag!r} must name a version")
        if target in doc["versions"]:
            if old_tags.get(tag) != target:
                names.validate_dist_tag(tag)
            new_tags[tag] = target
        elif target not in removed:
            raise PublishError(400, f"dist-tag {tag!r} points at {target!r}, not a version of {name}")
    if "latest" not in new_tags:
        kept = old_tags.get("latest")
        if not (isinstance(kept, str) and kept in doc["versions"]):
            kept = preferred_latest(doc["versions"]) or next(iter(doc["versions"]))
        new_tags["latest"] = kept
    doc["dist-tags"] = new_tags
    hoist(doc)

    changed = doc != copy_doc(current)
    if changed:
        doc["time"]["modified"] = now
    tarballs = [tarball_file_of(name, v, current["versions"][v]) for v in removed]
    return UpdateResult(doc, removed, tarballs, changed)


def unpublish_all(current: Doc, *, now: str, user: str | None = None) -> UpdateResult:
    """Remove every version, leaving a tombstone that keeps `time` so no version is reused.

    The tombstone has no versions and no dist-tags; `time.unpublished` records
    when, by whom and which versions, as the npm registry does.
    """
    name = current["name"]
    versions = current.get("versions") or {}
    time = {k: v for k, v in (current.get("time") or {}).items() if k != "unpublished"}
    time["modified"] = now
    time["unpublished"] = {"time": now, "versions": list(versions)}
    if user:
        time["unpublished"]["name"] = user
    tombstone = {
        "_id": name,
        "name": name,
        "dist-tags": {},
        "versions": {},
        "time": time,
        "maintainers": list(current.get("maintainers") or []),
        "users": {},
    }
    removed = list(versions)
    return UpdateResult(tombstone, removed, [tarball_file_of(name, v, versions[v]) for v in removed], True)


def set_dist_tag(current: Doc, tag: str, version: str, *, now: str | None = None) -> Doc:
    """Point `tag` at `version` (400 for a tag that parses as a semver range, 404 for an unknown version)."""
    names.validate_dist_tag(tag)
    if version not in (current.get("versions") or {}):
        raise PublishError(404, f"version {version} of {current.get('name')} not found")
    doc = copy_doc(current)
    doc["dist-tags"][tag] = version
    if now:
        doc["time"]["modified"] = now
    hoist(doc)
    return doc


def remove_dist_tag(current: Doc, tag: str, *, now: str | None = None) -> Doc:
    """Remove `tag` (400 for `latest`, which every package keeps; 404 when there is no such tag)."""
    if tag == "latest":
        raise PublishError(400, "the latest dist-tag cannot be removed")
    if tag not in (current.get("dist-tags") or {}):
        raise PublishError(404, f"{current.get('name')} has no dist-tag {tag!r}")
    doc = copy_doc(current)
    del doc["dist-tags"][tag]
    if now:
        doc["time"]["modified"] = now
    return doc


def _read_at(body: Doc) -> str | None:
    """When the document the client sends back was last modified, as it read it."""
    times = body.get("time")
    modified = times.get("modified") if isinstance(times, dict) else None
    return modified if isinstance(modified, str) else None
