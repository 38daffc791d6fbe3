"""Packument changes and views: pure functions, dicts in and new dicts out.

A packument is the CouchDB-shaped document npm serves for `GET /{name}`:
`_id`, `name`, `dist-tags`, `versions` (one manifest per version), `time`
(`created`, `modified`, one entry per version ever published), `maintainers`,
`users`, and the fields hoisted from the `latest` manifest. The functions here
never mutate their inputs; they copy what they change. Validation failures
raise `PublishError(status, message)` (registry.domain.errors), which the error
middleware renders as it does every RegistryError.

Here: the shared basics and `apply_publish` (npm publish). The other writes —
`apply_update` (deprecate, unpublish of versions, owners, stars),
`unpublish_all`, `set_dist_tag`, `remove_dist_tag` — are in
packument_changes.py; views of a packument (abbreviated, rewritten URLs, one
manifest) in packument_views.py.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import semver

from registry.domain import names
from registry.domain.clock import now_iso
from registry.domain.errors import PublishError
from registry.domain.manifest_fields import check_manifest_fields

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


def new_packument(name: str, *, now: str | None = None) -> Doc:
    """An empty packument for `name`, created (and modified) at `now`."""
    stamp = now or now_iso()
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


def copy_doc(doc: Doc) -> Doc:
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


def hoist(doc: Doc) -> None:
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


def check_body_name(body: Doc, name: str) -> None:
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
    check_body_name(body, name)
    versions = body.get("versions")
    if not isinstance(versions, dict) or len(versions) != 1:
        raise PublishError(400, "a publish must carry exactly one version")
    ((version, manifest),) = versions.items()
    parsed = parse_version(version)
    if parsed is None:
        raise PublishError(400, f"invalid version {version!r}: not a valid semver version (e.g. 1.2.3)")
    if not isinstance(manifest, dict):
        raise PublishError(400, f"the manifest of {version} must be an object")
    check_manifest_fields(manifest)
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

    doc = copy_doc(current) if current else new_packument(name, now=now)
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
    hoist(doc)
    return doc, version


def tarball_file_of(name: str, version: str, manifest: Any) -> str:
    dist = manifest.get("dist") if isinstance(manifest, dict) else None
    if isinstance(dist, dict) and isinstance(dist.get("tarball"), str):
        last = urlsplit(dist["tarball"]).path.rsplit("/", 1)[-1]
        if names.is_safe_filename(last):
            return last
    return names.tarball_filename(name, version)
