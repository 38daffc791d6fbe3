"""Read-side views of a packument: what a client is served, built from what is stored."""

from __future__ import annotations

from typing import Any

from registry.domain.packument import (
    ABBREVIATED_FIELDS,
    INSTALL_SCRIPTS,
    Doc,
    parse_version,
    tarball_file_of,
)

ATTESTATIONS_PATH = "/-/npm/v1/attestations/"


def attestations_path(name: str, version: str) -> str:
    """`/-/npm/v1/attestations/@scope%2fname@1.0.0`: the public registry's form (the scope's
    slash encoded, lowercase, the `@` kept). Names are URL-safe, so nothing else needs escaping."""
    return f"{ATTESTATIONS_PATH}{name.replace('/', '%2f')}@{version}"


def rewrite_tarball_urls(doc: Doc, base_url: str) -> Doc:
    """Every `dist.tarball` becomes `{base_url}/{name}/-/{file}` (scoped names unescaped, as npm),
    and every `dist.attestations.url` this registry's attestations endpoint: for a mirrored
    version too, so clients never need to reach the uplink (routes_attestations asks it)."""
    base = base_url.rstrip("/")
    name = doc.get("name", "")
    new = dict(doc)
    new["versions"] = {
        version: rewrite_manifest(manifest, name, version, base)
        for version, manifest in (doc.get("versions") or {}).items()
    }
    return new


def rewrite_manifest(manifest: Any, name: str, version: str, base: str) -> Any:
    """One version's manifest as `rewrite_tarball_urls` serves it (`base` without a trailing slash)."""
    if not isinstance(manifest, dict):
        return manifest
    dist = dict(manifest.get("dist") or {})
    dist["tarball"] = f"{base}/{name}/-/{tarball_file_of(name, version, manifest)}"
    attestations = dist.get("attestations")
    if isinstance(attestations, dict):
        dist["attestations"] = {**attestations, "url": base + attestations_path(name, version)}
    return {**manifest, "dist": dist}


def abbreviate(doc: Doc) -> Doc:
    """npm's abbreviated install document (`application/vnd.npm.install-v1+json`).

    Top level: `name`, `dist-tags`, `modified`, `versions`, and `time`, which
    the npm registry dropped but pnpm's time-based resolution reads. Each
    version keeps only the install fields that are present; `hasInstallScript`
    is computed from the lifecycle scripts when the manifest has none.
    """
    versions = doc.get("versions") or {}
    result = abbreviated_top(doc)
    result["versions"] = {
        version: abbreviate_manifest(manifest) for version, manifest in versions.items()
        if isinstance(manifest, dict)
    }
    return result


def abbreviated_top(doc: Doc) -> Doc:
    """The abbreviated document without its versions (`versions` is an empty placeholder)."""
    time = doc.get("time") or {}
    result: Doc = {"name": doc.get("name"), "dist-tags": dict(doc.get("dist-tags") or {})}
    if "modified" in time:
        result["modified"] = time["modified"]
    result["versions"] = {}
    if time:
        result["time"] = dict(time)
    return result


def abbreviate_manifest(manifest: Doc) -> Doc:
    """One version as the abbreviated document carries it."""
    slim = {key: manifest[key] for key in ABBREVIATED_FIELDS if key in manifest}
    scripts = manifest.get("scripts")
    if "hasInstallScript" not in slim and isinstance(scripts, dict) and any(
        scripts.get(script) for script in INSTALL_SCRIPTS
    ):
        slim["hasInstallScript"] = True
    return slim


def manifest_for(doc: Doc, spec: str) -> Doc | None:
    """The manifest for `GET /{name}/{spec}`: an exact version, else a dist-tag, else None.

    A version written as npm's `semver.clean` accepts (`v1.0.0`, `=1.0.0`) is found too.
    """
    version = version_for(doc, spec)
    return None if version is None else dict(doc["versions"][version])


def version_for(doc: Doc, spec: str) -> str | None:
    """The key of `versions` whose manifest `manifest_for` answers with, or None."""
    versions = doc.get("versions") or {}
    tags = doc.get("dist-tags") or {}
    cleaned = spec.strip().lstrip("=v").strip()
    candidates = (spec, tags[spec] if spec in tags else None, cleaned if parse_version(cleaned) else None)
    for candidate in candidates:
        if isinstance(candidate, str) and versions.get(candidate) is not None:
            return candidate if isinstance(versions[candidate], dict) else None
    return None
