"""What the fake upstream serves in the benchmark, and the npm ci project.

Every package here is real-shaped (built by `tests.support.fake_upstream_docs`):

- `bench-full`: a ~750 KB packument whose abbreviated document is ~430 KB;
- `bench-huge`: a ~20 MB packument with thousands of versions;
- `bench-small`: one version, a ~3 KB tarball;
- `bench-large`: one version, a ~4 MB tarball (incompressible content);
- `bench-tree`: a dependency tree of `tree_size` packages for `npm ci`.

`lockfile()` writes the package-lock.json npm ci installs from, pure and
deterministic, with every `resolved` URL under the registry given.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import Any

import semver

from tests.support.fake_upstream import FakeUpstream
from tests.support.fake_upstream_docs import Doc, build_version, tarball_filename
from tests.support.fake_upstream_sets import large_versions, tree_spec

FULL = "bench-full"
HUGE = "bench-huge"
SMALL = "bench-small"
LARGE = "bench-large"
TREE_ROOT = "bench-tree"
VERSION = "1.0.0"

FULL_VERSIONS = 385  # ~750 KB full, ~430 KB abbreviated
HUGE_VERSIONS = 11_800  # ~20 MB full
SMALL_PAYLOAD = 3_400  # base64 characters of random bytes: a ~3 KB tarball
LARGE_PAYLOAD = 5_400_000  # a ~4 MB tarball
TREE_SIZE = 520
APP = "bench-app"


@dataclass(frozen=True)
class Corpus:
    """Sizes of what the upstream serves; the defaults are the issue's."""

    full_versions: int = FULL_VERSIONS
    huge_versions: int = HUGE_VERSIONS
    small_payload: int = SMALL_PAYLOAD
    large_payload: int = LARGE_PAYLOAD
    tree_size: int = TREE_SIZE


def full_versions(name: str, count: int) -> dict[str, Doc]:
    """Heavy manifests with install fields (peer deps, funding), so the
    abbreviated document keeps more than half of the full one, as real ones do.
    """
    versions = large_versions(name, count)
    for manifest in versions.values():
        manifest["peerDependencies"] = {f"{name}-peer-a": ">=1.0.0 <4.0.0", f"{name}-peer-b": "^2.1.0"}
        manifest["funding"] = {"type": "opencollective", "url": f"https://opencollective.example.com/{name}"}
    return versions


def payload(size: int, seed: int) -> str:
    """`size` characters that gzip cannot shrink much (base64 of random bytes)."""
    data = random.Random(seed).randbytes(size * 3 // 4 + 3)
    return base64.b64encode(data).decode()[:size]


def populate(upstream: FakeUpstream, corpus: Corpus) -> list[str]:
    """Add the whole corpus to `upstream`; the tree's package names."""
    upstream.add_package(FULL, full_versions(FULL, corpus.full_versions))
    upstream.add_large_packument(HUGE, corpus.huge_versions)
    upstream.add_package(SMALL, [VERSION], files={"data.txt": payload(corpus.small_payload, 1)})
    upstream.add_package(LARGE, [VERSION], files={"data.txt": payload(corpus.large_payload, 2)})
    return upstream.add_tree(TREE_ROOT, corpus.tree_size)


def tarball_path(name: str, version: str = VERSION) -> str:
    """The registry path of a tarball: `/name/-/name-1.0.0.tgz`."""
    return f"/{name}/-/{tarball_filename(name, version)}"


# -- the npm ci project ----------------------------------------------------------


def _resolve(versions: dict[str, Doc], ranges: list[str]) -> str:
    """The highest version satisfying every range (one copy per name, hoisted)."""
    candidates = sorted((semver.Version.parse(v) for v in versions), reverse=True)
    for candidate in candidates:
        if all(_satisfies(candidate, wanted) for wanted in ranges):
            return str(candidate)
    raise ValueError(f"no version satisfies all of {ranges}")


def _satisfies(version: semver.Version, wanted: str) -> bool:
    """npm ranges as tree_spec writes them: ^, ~, x, and space-joined comparators."""
    wanted = wanted.strip()
    if wanted.endswith(".x"):
        return version.major == int(wanted.split(".")[0]) and not version.prerelease
    if wanted.startswith("^"):
        low = semver.Version.parse(wanted[1:])
        return version >= low and version.major == low.major
    if wanted.startswith("~"):
        low = semver.Version.parse(wanted[1:])
        return version >= low and (version.major, version.minor) == (low.major, low.minor)
    return all(version.match(part) for part in wanted.split())


def lockfile(tree_size: int, registry: str) -> tuple[Doc, Doc]:
    """(package.json, package-lock.json v3) of a project depending on the
    bench tree, every package hoisted to the top and `resolved` under
    `registry` (no trailing slash).
    """
    spec = tree_spec(TREE_ROOT, tree_size)
    wanted: dict[str, list[str]] = {TREE_ROOT: ["^1.0.0"]}
    # Every range on a name, from every version that can be chosen: tree_spec
    # keeps them compatible, so one copy per name satisfies all dependents.
    changed = True
    chosen: dict[str, str] = {}
    while changed:
        changed = False
        for name in list(wanted):
            version = _resolve(spec[name], wanted[name])
            if chosen.get(name) == version:
                continue
            chosen[name] = version
            changed = True
            for dep, dep_range in (spec[name][version].get("dependencies") or {}).items():
                if dep_range not in wanted.setdefault(dep, []):
                    wanted[dep].append(dep_range)
    registry = registry.rstrip("/")
    root_deps = {TREE_ROOT: "^1.0.0"}
    package_json: Doc = {"name": APP, "version": "1.0.0", "private": True, "dependencies": root_deps}
    packages: dict[str, Any] = {"": {"name": APP, "version": "1.0.0", "dependencies": root_deps}}
    for name in sorted(chosen):
        version = chosen[name]
        manifest, _ = build_version(name, version, spec[name][version], None)
        entry: Doc = {
            "version": version,
            "resolved": f"{registry}/{name}/-/{tarball_filename(name, version)}",
            "integrity": manifest["dist"]["integrity"],
            "license": manifest.get("license", "MIT"),
        }
        for key in ("dependencies", "bin", "engines"):
            if manifest.get(key):
                entry[key] = manifest[key]
        packages[f"node_modules/{name}"] = entry
    lock: Doc = {"name": APP, "version": "1.0.0", "lockfileVersion": 3, "requires": True, "packages": packages}
    return package_json, lock


def rewrite_resolved(lock: Doc, registry: str) -> Doc:
    """The same lockfile with every `resolved` URL moved under `registry`."""
    registry = registry.rstrip("/")
    packages: dict[str, Any] = {}
    for key, entry in lock["packages"].items():
        entry = dict(entry)
        if "resolved" in entry:
            path = "/" + entry["resolved"].split("/", 3)[3]
            entry["resolved"] = registry + path
        packages[key] = entry
    return {**lock, "packages": packages}
