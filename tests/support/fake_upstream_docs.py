"""Documents the fake upstream registry serves, built by code (never captured).

Everything here is pure: tarballs as `npm pack` makes them (deterministic
bytes), version manifests and packuments in the CouchDB shape the npm registry
serves, and the abbreviated ("corgi") install document. The server in
`tests/support/fake_upstream.py` keeps `PackageRecord`s and renders them
against its own URL when asked; the package sets, search results and audit
answers are in `tests/support/fake_upstream_sets.py`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import semver

Doc = dict[str, Any]

BLOCK = 512
GZIP_LEVEL = 6  # zlib's default, as npm pack uses
NPM_PACK_MTIME = 499162500  # the fixed date npm pack writes into every entry
CLOCK_START = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
MAINTAINER = {"name": "fake-maintainer", "email": "maintainer@example.com"}
NODE_VERSION = "20.11.0"
NPM_VERSION = "10.2.4"

# Version fields of the abbreviated install document (application/vnd.npm.install-v1+json).
ABBREVIATED_FIELDS = (
    "name", "version", "deprecated", "dependencies", "optionalDependencies", "devDependencies",
    "bundleDependencies", "peerDependencies", "peerDependenciesMeta", "acceptDependencies",
    "bin", "directories", "dist", "engines", "cpu", "os", "libc", "_hasShrinkwrap",
    "hasInstallScript", "funding",
)
INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")
ATTESTATIONS_PATH = "/-/npm/v1/attestations/"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"


def iso(moment: datetime) -> str:
    """The registry's timestamp form: `2023-01-02T03:04:05.000Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def next_time(counter: int) -> str:
    """The fake's deterministic clock: one minute per publish."""
    return iso(CLOCK_START + timedelta(minutes=counter))


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def shasum_of(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def tarball_filename(name: str, version: str) -> str:
    """`name-1.0.0.tgz`; a scoped package drops its scope: `@s/name` → `name-1.0.0.tgz`."""
    return f"{name.rsplit('/', 1)[-1]}-{version}.tgz"


def build_tarball(package_json: Mapping[str, Any], files: Mapping[str, str]) -> bytes:
    """A gzipped tar as `npm pack` makes it: every entry under `package/`,
    package.json first, fixed mtimes (tar and gzip), so equal inputs give equal
    bytes. Bin targets are executable.
    """
    return _pack(package_json, _tarball_contents(package_json, files))


def _pack(package_json: Mapping[str, Any], contents: Mapping[str, bytes]) -> bytes:
    tar = _tar(contents, set(_bin_targets(package_json)))
    return gzip.compress(tar, compresslevel=GZIP_LEVEL, mtime=0)


def _tarball_contents(package_json: Mapping[str, Any], files: Mapping[str, str]) -> dict[str, bytes]:
    contents = {"package.json": orjson.dumps(package_json, option=orjson.OPT_INDENT_2) + b"\n"}
    contents.update(sorted((path, text.encode()) for path, text in files.items() if path != "package.json"))
    return contents


def _tar(contents: Mapping[str, bytes], executables: set[str]) -> bytes:
    # Written block by block like node-tar (no padding to tarfile's 10 KiB
    # record): thousands of versions build in about a second.
    blocks: list[bytes] = []
    for path, data in contents.items():
        info = tarfile.TarInfo(f"package/{path}")
        info.size = len(data)
        info.mode = 0o755 if path in executables else 0o644
        info.mtime = NPM_PACK_MTIME
        blocks += [info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"), data, bytes(-len(data) % BLOCK)]
    blocks.append(bytes(2 * BLOCK))
    return b"".join(blocks)


def _bin_targets(package_json: Mapping[str, Any]) -> list[str]:
    bin_field = package_json.get("bin")
    if isinstance(bin_field, str):
        targets = [bin_field]
    elif isinstance(bin_field, Mapping):
        targets = [str(target) for target in bin_field.values()]
    else:
        targets = []
    return [target.removeprefix("./") for target in targets]


def default_files(name: str, version: str, package_json: Mapping[str, Any]) -> dict[str, str]:
    """index.js requiring each dependency, a README, and a script for every bin target."""
    deps = sorted((package_json.get("dependencies") or {}).keys())
    requires = ", ".join(f"require({json.dumps(dep)})" for dep in deps)
    files = {
        "index.js": (
            f"module.exports = {{ name: {json.dumps(name)}, version: {json.dumps(version)},"
            f" dependencies: [{requires}] }};\n"
        ),
        "README.md": f"# {name}\n\n{package_json.get('description', '')}\n",
    }
    for target in _bin_targets(package_json):
        files[target] = f"#!/usr/bin/env node\nconsole.log({json.dumps(f'{name}@{version}')});\n"
    return files


@dataclass
class PackageRecord:
    """One package as the fake holds it: manifests without tarball URLs, the
    tarball bytes, tags and times. `render_packument` turns it into the document.
    """

    name: str
    manifests: dict[str, Doc] = field(default_factory=dict)
    tarballs: dict[str, bytes] = field(default_factory=dict)  # version -> bytes
    dist_tags: dict[str, str] = field(default_factory=dict)
    times: dict[str, str] = field(default_factory=dict)  # created, modified, versions
    readme: str = ""
    revision: int = 0
    attestations: dict[str, list[Doc]] = field(default_factory=dict)  # version -> [{predicateType, bundle}]

    def version_for_file(self, filename: str) -> str | None:
        for version in self.tarballs:
            if tarball_filename(self.name, version) == filename:
                return version
        return None


def build_version(
    name: str, version: str, fields: Mapping[str, Any], files: Mapping[str, str] | None
) -> tuple[Doc, bytes]:
    """The version manifest (without `dist.tarball`, which depends on the
    server's URL) and the tarball it describes.
    """
    package_json: Doc = {
        "name": name,
        "version": version,
        "description": f"{name} — a package served by the fake upstream",
        "main": "index.js",
        "license": "MIT",
        **orjson.loads(orjson.dumps(dict(fields))),  # a deep copy, fast enough for thousands
    }
    package_json["name"], package_json["version"] = name, version
    deprecated = package_json.pop("deprecated", None)  # registry metadata, not in the tarball
    files = {**default_files(name, version, package_json), **(files or {})}
    contents = _tarball_contents(package_json, files)
    tarball = _pack(package_json, contents)
    manifest: Doc = {
        **package_json,
        "_id": f"{name}@{version}",
        "_nodeVersion": NODE_VERSION,
        "_npmVersion": NPM_VERSION,
        "_npmUser": dict(MAINTAINER),
        "_hasShrinkwrap": False,
        "maintainers": [dict(MAINTAINER)],
        "directories": package_json.get("directories", {}),
        "dist": {
            "integrity": integrity_of(tarball),
            "shasum": shasum_of(tarball),
            "fileCount": len(contents),
            "unpackedSize": sum(len(data) for data in contents.values()),
        },
    }
    if deprecated is not None:
        manifest["deprecated"] = deprecated
    scripts = package_json.get("scripts")
    if isinstance(scripts, Mapping) and any(scripts.get(script) for script in INSTALL_SCRIPTS):
        manifest["hasInstallScript"] = True
    return manifest, tarball


def highest_stable(versions: Iterable[str]) -> str:
    """The version `latest` points at by default: the highest release, else the highest."""
    parsed = sorted(semver.Version.parse(version) for version in versions)
    releases = [version for version in parsed if not version.prerelease]
    return str((releases or parsed)[-1])


def render_packument(record: PackageRecord, base_url: str) -> Doc:
    """The full CouchDB-style packument, tarball URLs under `base_url`.
    Nested values are shared with `record`: serialize it, don't mutate it.
    """
    versions: Doc = {}
    for version, manifest in record.manifests.items():
        tarball = f"{base_url}/{record.name}/-/{tarball_filename(record.name, version)}"
        versions[version] = {**manifest, "dist": {**manifest["dist"], "tarball": tarball}}
        if version in record.attestations:  # as the public registry lists them
            url = f"{base_url}{ATTESTATIONS_PATH}{record.name.replace('/', '%2f')}@{version}"
            provenance = {"predicateType": record.attestations[version][0]["predicateType"]}
            versions[version]["dist"]["attestations"] = {"url": url, "provenance": provenance}
    latest = versions.get(record.dist_tags.get("latest", ""), {})
    digest = hashlib.md5(json.dumps([record.name, record.revision, sorted(versions)]).encode()).hexdigest()
    doc: Doc = {
        "_id": record.name,
        "_rev": f"{record.revision}-{digest}",
        "name": record.name,
        "description": latest.get("description", ""),
        "dist-tags": dict(record.dist_tags),
        "versions": versions,
        "time": dict(record.times),
        "maintainers": [dict(MAINTAINER)],
        "readme": record.readme,
        "readmeFilename": "README.md",
        "license": latest.get("license", "MIT"),
        "homepage": f"https://example.com/{record.name}#readme",
        "keywords": latest.get("keywords", []),
        "repository": {"type": "git", "url": f"git+https://git.example.com/{record.name}.git"},
        "bugs": {"url": f"https://git.example.com/{record.name}/issues"},
        "users": {},
    }
    return doc


def abbreviate(doc: Doc) -> Doc:
    """The install document: name, modified, dist-tags, install fields of each version."""
    versions = {
        version: {key: manifest[key] for key in ABBREVIATED_FIELDS if key in manifest}
        for version, manifest in doc["versions"].items()
    }
    return {
        "name": doc["name"],
        "modified": doc["time"]["modified"],
        "dist-tags": doc["dist-tags"],
        "versions": versions,
    }


def purl(name: str, version: str) -> str:
    """The package URL npm's provenance names a version by: `pkg:npm/%40scope/name@1.0.0`."""
    return "pkg:npm/" + ("%40" + name[1:] if name.startswith("@") else name) + "@" + version


def provenance_bundle(
    name: str, version: str, tarball: bytes, *, predicate_type: str = SLSA_PROVENANCE_V1,
    subject: str | None = None, sha512: str | None = None,
) -> Doc:
    """A Sigstore bundle shaped as `npm publish --provenance` makes it: a DSSE envelope over an
    in-toto statement whose one subject is `subject` (default: the version's purl) with digest
    `sha512` (default: the tarball's). The signature is a hash of the payload and the
    certificate a placeholder, not a real signature: only Sigstore's Fulcio CA can issue one
    that verifies, and a registry checks the statement, not the signature (which needs
    Sigstore's trust root from the internet; see registry.domain.provenance).
    """
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject or purl(name, version),
                     "digest": {"sha512": sha512 or hashlib.sha512(tarball).hexdigest()}}],
        "predicateType": predicate_type,
        "predicate": {
            "buildDefinition": {"buildType": "https://ci.example.com/build/v1", "externalParameters": {}},
            "runDetails": {"builder": {"id": "https://ci.example.com/runner"}},
        },
    }
    payload = orjson.dumps(statement)
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": {"rawBytes": base64.b64encode(b"placeholder certificate").decode()},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": base64.b64encode(hashlib.sha512(payload).digest()).decode(), "keyid": ""}],
        },
    }
