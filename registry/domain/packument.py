"""Packument changes and views: pure functions, dicts in and new dicts out.

A packument is the CouchDB-shaped document npm serves for `GET /{name}`:
`_id`, `name`, `dist-tags`, `versions` (one manifest per version), `time`
(`created`, `modified`, one entry per version ever published), `maintainers`,
`users`, and the fields hoisted from the `latest` manifest. The functions here
never mutate their inputs; they copy what they change. Validation failures
raise `PublishError(status, message)` (registry.domain.errors), which the error
middleware renders as it does every RegistryError.

Writes: `apply_publish` (npm publish), `apply_update` (deprecate, unpublish of
versions, owners, stars), `unpublish_all`, `set_dist_tag`, `remove_dist_tag`.
Views of a packument (abbreviated, rewritten URLs, one manifest) are in views.py.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import semver

from registry.domain import names
from registry.domain.errors import PublishError

Doc = dict[str, Any]

# `time` keys that are not versions.
TIME_META = frozenset({"created", "modified", "unpublished"})

# Top-level fields npm hoists from the manifest the `latest` tag points at.
HOISTED = ("description", "author", "bugs", "contributors", "homepage", "keywords", "license", "repository")

# Version fields of npm's abbreviated ("corgi") document.
ABBREVIATED_FIELDS = (
    "name", "version", "deprecated", "dependencies", "optionalDependencies", "devDependencies",
    "bundleDependencies", "bundledDependencies", "peerDependencies", "peerDependenciesMeta",
    "acceptDependencies", "bin", "directories", "dist", "engines", "cpu", "os", "libc",
    "_hasShrinkwrap", "hasInstallScript", "funding",
)
INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")


@dataclass(frozen=True)
class AttachmentInfo:
    """What the caller learned decoding, hashing and unpacking the published tarball."""

    filename: str
    length: int
    sha1: str
    integrity: str
    file_count: int | None = None
    unpacked_size: int | None = None
    has_shrinkwrap: bool | None = None


@dataclass(frozen=True)
class UpdateResult:
    """The outcome of `apply_update` / `unpublish_all`.

    `removed_tarballs` are the file names of the removed versions, for the
    caller to delete after the packument write succeeded. `changed` is False
    when the body changed nothing (the caller may skip the write).
    """

    packument: Doc
    removed_versions: list[str] = field(default_factory=list)
    removed_tarballs: list[str] = field(default_factory=list)
    changed: bool = True


def utc_now() -> str:
    """Now, as the npm registry writes times: `2024-05-01T12:00:00.123Z`."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_packument(name: str, *, now: str | None = None) -> Doc:
    """An empty packument for `name`, created (and modified) at `now`."""
    stamp = now or utc_now()
    return {
        "_id": name,
        "name": name,
        "dist-tags": {},
        "versions": {},
        "time": {"created": stamp, "modified": stamp},
        "maintainers": [],
        "users": {},
        "readme": "",
    }


def _copy(doc: Doc) -> Doc:
    """A copy that is safe to edit: new containers at the top level; manifests stay shared."""
    new = dict(doc)
    new["versions"] = dict(doc.get("versions") or {})
    new["dist-tags"] = dict(doc.get("dist-tags") or {})
    new["time"] = dict(doc.get("time") or {})
    new["maintainers"] = list(doc.get("maintainers") or [])
    new["users"] = dict(doc.get("users") or {})
    new.pop("_attachments", None)
    new.pop("_rev", None)
    return new


def parse_version(version: Any) -> semver.Version | None:
    try:
        return semver.Version.parse(version)
    except (TypeError, ValueError):
        return None


def max_version(versions: Iterable[str]) -> str | None:
    """The highest of `versions` by semver precedence, ignoring invalid ones."""
    parsed = [(p, v) for v in versions if (p := parse_version(v)) is not None]
    return max(parsed, key=lambda pair: pair[0])[1] if parsed else None


def preferred_latest(versions: Iterable[str]) -> str | None:
    """The version `latest` should fall back to: the highest release, else the highest prerelease."""
    versions = list(versions)
    releases = [v for v in versions if (p := parse_version(v)) is not None and not p.prerelease]
    return max_version(releases) or max_version(versions)


def _used_versions(doc: Doc | None) -> list[str]:
    if not doc:
        return []
    keys = set(doc.get("versions") or {}) | (set(doc.get("time") or {}) - TIME_META)
    return sorted(keys)


def _hoist(doc: Doc) -> None:
    latest = doc["versions"].get(doc["dist-tags"].get("latest"))
    if not isinstance(latest, dict):
        return
    for key in HOISTED:
        if key in latest:
            doc[key] = latest[key]
        else:
            doc.pop(key, None)


def _check_integrity(declared: Any, attachment: AttachmentInfo) -> None:
    if not isinstance(declared, str):
        raise PublishError(422, "dist.integrity must be a string")
    sha1_b64 = base64.b64encode(binascii.unhexlify(attachment.sha1)).decode()
    expected = {"sha512": attachment.integrity.partition("-")[2], "sha1": sha1_b64}
    for entry in declared.split():
        algorithm, _, digest = entry.partition("-")
        digest = digest.split("?", 1)[0]
        if algorithm in expected and digest != expected[algorithm]:
            raise PublishError(
                422,
                f"integrity mismatch: the manifest says {entry}, the tarball has {attachment.integrity}",
            )


def _check_body_name(body: Doc, name: str) -> None:
    for key in ("name", "_id"):
        if key in body and body[key] != name:
            raise PublishError(400, f"the body's {key} {body[key]!r} does not match the package {name!r}")


def _publisher(body: Doc, user: str) -> dict[str, str]:
    for maintainer in body.get("maintainers") or []:
        if isinstance(maintainer, dict) and maintainer.get("name") == user and maintainer.get("email"):
            return {"name": user, "email": str(maintainer["email"])}
    return {"name": user}


def apply_publish(
    current: Doc | None,
    body: Doc,
    *,
    name: str,
    user: str,
    now: str,
    tarball_url: Callable[[str, str], str],
    attachment: AttachmentInfo,
) -> tuple[Doc, str]:
    """Add the one version in an `npm publish` body to `current`; returns (packument, version).

    Refuses (PublishError) a body for another name (400), anything but one
    version (400), a version that is not strict semver (400), a manifest
    whose name/version disagree (400), a version ever published before, even
    if unpublished since (403, npm's wording), dist-tags pointing elsewhere
    (400), anything but one attachment named as the version's tarball (400),
    and a declared length, `dist.shasum` or `dist.integrity` that does not
    match the received tarball (422). `dist` is rebuilt from `attachment`.
    """
    if not isinstance(body, dict):
        raise PublishError(400, "a publish body must be a JSON object")
    _check_body_name(body, name)
    versions = body.get("versions")
    if not isinstance(versions, dict) or len(versions) != 1:
        raise PublishError(400, "a publish must carry exactly one version")
    ((version, manifest),) = versions.items()
    parsed = parse_version(version)
    if parsed is None:
        raise PublishError(400, f"invalid version {version!r}: not a valid semver version (e.g. 1.2.3)")
    if not isinstance(manifest, dict):
        raise PublishError(400, f"the manifest of {version} must be an object")
    if manifest.get("name") != name or manifest.get("version") != version:
        raise PublishError(
            400,
            f"the manifest says {manifest.get('name')}@{manifest.get('version')}, not {name}@{version}",
        )
    for used in _used_versions(current):
        if parse_version(used) == parsed:
            raise PublishError(403, f"You cannot publish over the previously published version {used}.")

    tags = body.get("dist-tags") or {}
    if not isinstance(tags, dict):
        raise PublishError(400, "dist-tags must be an object")
    for tag, target in tags.items():
        names.validate_dist_tag(tag)
        if target != version:
            raise PublishError(400, f"dist-tag {tag!r} points at {target!r}, not at {version}")
    tags = dict(tags) or {"latest": version}

    filename = names.tarball_filename(name, version)
    attachments = body.get("_attachments")
    if not isinstance(attachments, dict) or len(attachments) != 1:
        raise PublishError(400, "a publish must carry exactly one attachment (the tarball)")
    ((key, declared),) = attachments.items()
    if key not in {filename, f"{name}-{version}.tgz"} or attachment.filename != filename:
        raise PublishError(400, f"attachment {key!r} is not the tarball {filename} of {name}@{version}")
    length = declared.get("length") if isinstance(declared, dict) else None
    if length is not None and length != attachment.length:
        raise PublishError(422, f"attachment length {length} is not the {attachment.length} bytes sent")
    dist = manifest.get("dist") or {}
    if not isinstance(dist, dict):
        raise PublishError(400, "dist must be an object")
    shasum = dist.get("shasum")
    if shasum is not None and str(shasum).lower() != attachment.sha1:
        raise PublishError(422, f"shasum mismatch: the manifest says {shasum}, the tarball {attachment.sha1}")
    if dist.get("integrity") is not None:
        _check_integrity(dist["integrity"], attachment)

    doc = _copy(current) if current else new_packument(name, now=now)
    doc["_id"] = doc["name"] = name
    if not doc["versions"]:
        # A new package, or one fully unpublished before: the publisher owns it.
        doc["maintainers"] = [_publisher(body, user)]
        doc["time"].pop("unpublished", None)

    new_dist: dict[str, Any] = {
        "shasum": attachment.sha1,
        "integrity": attachment.integrity,
        "tarball": tarball_url(name, filename),
    }
    if attachment.file_count is not None:
        new_dist["fileCount"] = attachment.file_count
    if attachment.unpacked_size is not None:
        new_dist["unpackedSize"] = attachment.unpacked_size
    stored = {k: v for k, v in manifest.items() if k != "readme"}
    stored.update(
        _id=f"{name}@{version}",
        _npmUser=_publisher(body, user),
        maintainers=list(doc["maintainers"]),
        dist=new_dist,
    )
    if attachment.has_shrinkwrap is not None:
        stored["_hasShrinkwrap"] = attachment.has_shrinkwrap

    doc["versions"][version] = stored
    doc["dist-tags"].update(tags)
    doc["dist-tags"].setdefault("latest", version)
    doc["time"].setdefault("created", now)
    doc["time"][version] = now
    doc["time"]["modified"] = now
    readme = body.get("readme", manifest.get("readme"))
    if isinstance(readme, str):
        doc["readme"] = readme
        filename_of_readme = body.get("readmeFilename", manifest.get("readmeFilename"))
        if isinstance(filename_of_readme, str):
            doc["readmeFilename"] = filename_of_readme
    _hoist(doc)
    return doc, version


def _same_dist(stored: Any, incoming: Any) -> bool:
    """Equal apart from the tarball URL's host/base, which GET rewrote on the way out."""
    if not isinstance(stored, dict) or not isinstance(incoming, dict):
        return bool(stored == incoming)

    def filename(dist: dict[str, Any]) -> str:
        return urlsplit(str(dist.get("tarball", ""))).path.rsplit("/", 1)[-1]

    rest = {k: v for k, v in stored.items() if k != "tarball"}
    incoming_rest = {k: v for k, v in incoming.items() if k != "tarball"}
    return rest == incoming_rest and filename(stored) == filename(incoming)


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


def tarball_file_of(name: str, version: str, manifest: Any) -> str:
    dist = manifest.get("dist") if isinstance(manifest, dict) else None
    if isinstance(dist, dict) and isinstance(dist.get("tarball"), str):
        last = urlsplit(dist["tarball"]).path.rsplit("/", 1)[-1]
        if names.is_safe_filename(last):
            return last
    return names.tarball_filename(name, version)


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
    `unpublish_all` does.
    """
    if not isinstance(body, dict):
        raise PublishError(400, "the body must be a JSON object")
    name = current["name"]
    _check_body_name(body, name)
    if not current.get("versions"):
        raise PublishError(404, f"package {name} not found")
    doc = _copy(current)
    incoming_versions = body.get("versions")
    if incoming_versions is not None and not isinstance(incoming_versions, dict):
        raise PublishError(400, "versions must be an object")
    removed: list[str] = []
    if incoming_versions is not None:
        added = sorted(set(incoming_versions) - set(current.get("versions") or {}))
        if added:
            raise PublishError(400, f"versions can only be added by npm publish: {', '.join(added)}")
        for version, stored in (current.get("versions") or {}).items():
            if version not in incoming_versions:
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
    _hoist(doc)

    changed = doc != _copy(current)
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
    doc = _copy(current)
    doc["dist-tags"][tag] = version
    if now:
        doc["time"]["modified"] = now
    _hoist(doc)
    return doc


def remove_dist_tag(current: Doc, tag: str, *, now: str | None = None) -> Doc:
    """Remove `tag` (400 for `latest`, which every package keeps; 404 when there is no such tag)."""
    if tag == "latest":
        raise PublishError(400, "the latest dist-tag cannot be removed")
    if tag not in (current.get("dist-tags") or {}):
        raise PublishError(404, f"{current.get('name')} has no dist-tag {tag!r}")
    doc = _copy(current)
    del doc["dist-tags"][tag]
    if now:
        doc["time"]["modified"] = now
    return doc
