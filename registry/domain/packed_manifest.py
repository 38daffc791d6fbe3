"""No manifest confusion: what installs a package comes from its tarball, not from the publish body.

A publish body carries the version's manifest, which the packument serves
and clients resolve with, and a tarball whose own package.json is what runs
on install. A client (or an attacker with a token) can send a manifest that
differs: dependencies that hide a malicious one, scripts that are not the
ones that run, bins that point elsewhere. The public npm registry stores
the body as sent. tarhold stores the tarball's own dependency maps, scripts
and bin in the manifest it serves, normalized as npm normalizes them when it
publishes, so a packument can never show one thing while the tarball ships
another.
"""

from __future__ import annotations

import posixpath
from typing import Any

# Fields whose value the tarball decides; absent there, absent in the manifest.
FROM_TARBALL = (
    "dependencies", "optionalDependencies", "peerDependencies", "peerDependenciesMeta",
    "bundleDependencies", "bundledDependencies", "scripts",
)
# npm adds this install script when a package has a binding.gyp and no
# install script of its own; the client adds it on install either way.
GYP_INSTALL = "node-gyp rebuild"


def _clean_bin_path(path: str) -> str:
    normalized = posixpath.normpath(path.replace("\\", "/"))
    return normalized[2:] if normalized.startswith("./") else normalized


def normalized_bin(name: str, value: Any) -> dict[str, str] | None:
    """npm's normalization of `bin`: a string names one command after the (unscoped) package."""
    if isinstance(value, str):
        return {name.split("/")[-1]: _clean_bin_path(value)}
    if isinstance(value, dict):
        return {
            posixpath.basename(str(command)): _clean_bin_path(path)
            for command, path in value.items() if isinstance(path, str)
        }
    return None


def from_tarball(sent: dict[str, Any], packed: dict[str, Any]) -> dict[str, Any]:
    """The manifest to store: `sent` (the publish body's) with what installs taken from `packed`."""
    manifest = dict(sent)
    for field in FROM_TARBALL:
        if field in packed:
            manifest[field] = packed[field]
        else:
            manifest.pop(field, None)
    sent_scripts = sent.get("scripts") if isinstance(sent.get("scripts"), dict) else {}
    packed_scripts = packed.get("scripts") if isinstance(packed.get("scripts"), dict) else {}
    if (sent_scripts.get("install") == GYP_INSTALL and "install" not in packed_scripts
            and "preinstall" not in packed_scripts):
        manifest["scripts"] = {**packed_scripts, "install": GYP_INSTALL}
    if "bin" in packed:
        manifest["bin"] = normalized_bin(str(packed.get("name", "")), packed["bin"])
        if manifest["bin"] is None:
            manifest.pop("bin")
    elif not isinstance(packed.get("directories"), dict) or "bin" not in packed["directories"]:
        # npm derives `bin` from `directories.bin` by listing files; otherwise
        # a bin the tarball does not declare is not one.
        manifest.pop("bin", None)
    return manifest
