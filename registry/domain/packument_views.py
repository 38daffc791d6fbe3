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
    versions: dict[str, Any] = {}
    for version, manifest in (doc.get("versions") or {}).items():
        if isinstance(manifest, dict):
            dist = dict(manifest.get("dist") or {})
            dist["tarball"] = f"{base}/{name}/-/{tarball_file_of(name, version, manifest)}"
            attestations = dist.get("attestations")
            if isinstance(attestations, dict):
                dist["attestations"] = {**attestations, "url": base + attestations_path(name, version)}
            manifest = {**manifest, "dist": dist}
        versions[version] = manifest
    new["versions"] = versions
    return new


def abbreviate(doc: Doc) -> Doc:
    """npm's abbreviated install document (`application/vnd.npm.install-v1+json`).

    Top level: `name`, `dist-tags`, `modified`, `versions`, and `time`, which
    the npm registry dropped but pnpm's time-based resolution reads. Each
    version keeps only the install fields that are present; `hasInstallScript`
    is computed from the lifecycle scripts when the manifest has none.
    """
    time = doc.get("time") or {}
    result: Doc = {"name": doc.get("name"), "dist-tags": dict(doc.get("dist-tags") or {})}
    if "modified" in time:
        result["modified"] = time["modified"]
    versions: dict[str, Any] = {}
    for version, manifest in (doc.get("versions") or {}).items():
        if not isinstance(manifest, dict):
            continue
        slim = {key: manifest[key] for key in ABBREVIATED_FIELDS if key in manifest}
        scripts = manifest.get("scripts")
        if "hasInstallScript" not in slim and isinstance(scripts, dict) and any(
            scripts.get(script) for script in INSTALL_SCRIPTS
        ):
            slim["hasInstallScript"] = True
        versions[version] = slim
    result["versions"] = versions
    if time:
        result["time"] = dict(time)
    return result


def manifest_for(doc: Doc, spec: str) -> Doc | None:
    """The manifest for `GET /{name}/{spec}`: an exact version, else a dist-tag, else None.

    A version written as npm's `semver.clean` accepts (`v1.0.0`, `=1.0.0`) is found too.
    """
    versions = doc.get("versions") or {}
    manifest = versions.get(spec)
    if manifest is None and spec in (doc.get("dist-tags") or {}):
        manifest = versions.get(doc["dist-tags"][spec])
    if manifest is None:
        cleaned = spec.strip().lstrip("=v").strip()
        if parse_version(cleaned) is not None:
            manifest = versions.get(cleaned)
    return dict(manifest) if isinstance(manifest, dict) else None
