"""`tarhold import verdaccio`: packages from a Verdaccio storage (its users:
`import_users`; its documents, transformed: `import_docs`).

The source is a PackageStore too: Verdaccio's storage directory has the same
layout as tarhold's (`{name}/package.json` and the tarballs beside it), and so
has a verdaccio-aws-s3-storage bucket (`{keyPrefix}/{name}/package.json`).

Per package, in an order that survives an interruption at any point:
tarballs first (each verified against its version's `dist.shasum` and
`dist.integrity` while it streams, and stored only when it checks out), then
the packument through `Packages.update_packument` (a conditional write), then
the package list entry. A re-run finds what is already there and skips it.

Which packages are whose: a package in `.verdaccio-db.json`'s `list` (or,
without that file, one no uplink ever answered for) was published to
Verdaccio and becomes a local package here; its versions without a tarball
in the storage (upstream versions Verdaccio merged in) are left out. A
package Verdaccio only cached from an uplink becomes a mirrored one, marked
as `uplinks.mirror` marks its own (`--skip-cached` leaves them out): it keeps
the upstream tarball URLs, serves the tarballs Verdaccio had, fetches the
others on demand, refreshes from tarhold's uplinks and is subject to gc.

Against what tarhold already holds: nothing → written; a mirrored copy →
replaced by a local package (as a publish would); a local package → merged
version by version when no version differs, else reported and skipped; an
untouched Verdaccio document at the very same key (importing in place) →
rewritten without copying a byte of its tarballs.

Verdaccio's JWT `secret` is not imported: tarhold keeps its own, so tokens
Verdaccio issued stop working and users log in again (their passwords work).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from registry.domain.errors import RegistryError
from registry.domain.packages import Packages, is_mirrored
from registry.domain.packument import tarball_file_of
from registry.ops.import_docs import (
    Doc,
    Skip,
    VersionConflict,
    cached_from,
    clean,
    merge,
    without_versions,
)
from storage.base import NotFound, PackageStore, StorageError

LOG = logging.getLogger(__name__)

DB_FILES = (".verdaccio-db.json", "verdaccio-s3-db.json", ".verdaccio-s3-db.json")
KINDS = ("packages", "versions", "tarballs", "users")
OUTCOMES = ("imported", "skipped", "failed")


class IntegrityMismatch(Exception):
    """A tarball's bytes are not what its version's dist says."""


@dataclass
class Summary:
    """Counts per kind and outcome, and one line per problem."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, outcome: str, amount: int = 1) -> None:
        self.counts[(kind, outcome)] += amount

    def new(self) -> int:
        """How many things this run imported."""
        return sum(n for (_, outcome), n in self.counts.items() if outcome == "imported")

    def lines(self) -> list[str]:
        table = [
            f"{kind:>9}: " + ", ".join(f"{self.counts[(kind, o)]} {o}" for o in OUTCOMES)
            for kind in KINDS
        ]
        return table + [f"problem: {p}" for p in self.problems] + [f"note: {n}" for n in self.notes]


# -- tarballs --------------------------------------------------------------------


@dataclass
class Expected:
    sha1: str | None
    integrity: dict[str, str]  # algorithm -> base64 digest

    @classmethod
    def of(cls, manifest: Doc) -> Expected:
        dist = manifest.get("dist") or {}
        integrity = {}
        for entry in str(dist.get("integrity") or "").split():
            algorithm, _, digest = entry.partition("-")
            if algorithm in ("sha512", "sha384", "sha256", "sha1"):
                integrity[algorithm] = digest.split("?", 1)[0]
        shasum = dist.get("shasum")
        return cls(shasum.lower() if isinstance(shasum, str) else None, integrity)

    def check(self, hashes: dict[str, Any]) -> None:
        if self.sha1 is None and not self.integrity:
            raise IntegrityMismatch("its version declares neither dist.shasum nor dist.integrity")
        if self.sha1 is not None and hashes["sha1"].hexdigest() != self.sha1:
            raise IntegrityMismatch(f"sha1 {hashes['sha1'].hexdigest()} is not dist.shasum {self.sha1}")
        for algorithm, digest in self.integrity.items():
            actual = base64.b64encode(hashes[algorithm].digest()).decode()
            if actual != digest:
                raise IntegrityMismatch(f"{algorithm} does not match dist.integrity")


async def verified(store: PackageStore, name: str, filename: str, expected: Expected) -> AsyncIterator[bytes]:
    """The stored tarball's bytes; raises IntegrityMismatch at the end when they do not check out."""
    hashes = {a: hashlib.new(a) for a in ("sha1", "sha256", "sha384", "sha512")}
    async with await store.open_tarball(name, filename) as reader:
        async for chunk in reader:
            for h in hashes.values():
                h.update(chunk)
            yield chunk
    expected.check(hashes)


async def drain(chunks: AsyncIterator[bytes]) -> None:
    async for _ in chunks:
        pass


# -- Verdaccio's db file ------------------------------------------------------------


async def read_db_json(source: PackageStore) -> Doc | None:
    """Verdaccio's `.verdaccio-db.json` (or the S3 plugin's db file), or None.

    Its `list` names the packages published to Verdaccio.
    """
    for filename in DB_FILES:
        try:
            data = await source.read_root_file(filename)
        except NotFound:
            continue
        doc = orjson.loads(data)
        return doc if isinstance(doc, dict) else None
    return None


# -- the import --------------------------------------------------------------------


def same_location(source: PackageStore, target: PackageStore, name: str) -> bool:
    """Whether `name`'s files in `source` and `target` are the very same files."""
    return source.package_location(name) == target.package_location(name)


class VerdaccioImporter:
    """Imports every package of `source` into `packages`; see the module docstring."""

    def __init__(
        self,
        source: PackageStore,
        packages: Packages,
        *,
        base_url: str,
        local_names: set[str] | None,
        uplinks: tuple[str, ...] = (),
        skip_cached: bool = False,
        maintainer: str | None = None,
        summary: Summary | None = None,
    ) -> None:
        self.source = source
        self.packages = packages
        self.base_url = base_url
        self.local_names = local_names
        self.uplinks = uplinks
        self.skip_cached = skip_cached
        self.maintainer = maintainer
        self.unowned: list[str] = []
        self.summary = summary or Summary()

    async def names(self) -> list[str]:
        return sorted({name async for name in self.source.package_names()})

    async def run(self, names: list[str], progress: Callable[[], None] = lambda: None) -> Summary:
        for name in names:
            try:
                await self.import_package(name)
            except Skip as why:
                self.summary.add("packages", "skipped")
                LOG.info("%s: skipped: %s", name, why)
            except VersionConflict as exc:
                self.summary.add("packages", "failed")
                self.summary.problems.append(f"{name}: {exc}; skipped")
            except (RegistryError, StorageError, OSError, ValueError) as exc:
                self.summary.add("packages", "failed")
                self.summary.problems.append(f"{name}: {getattr(exc, 'message', exc)}")
            progress()
        if self.unowned:
            self.summary.notes.append(
                f"{len(self.unowned)} packages name no maintainer, so nobody can publish to them"
                f" ({', '.join(self.unowned[:5])}{', ...' if len(self.unowned) > 5 else ''}):"
                " import them with --maintainer USER"
            )
        return self.summary

    def is_local(self, name: str, doc: Doc) -> bool:
        if self.local_names is not None:
            return name in self.local_names
        return cached_from(doc) is None

    def prepare(self, name: str, raw: Doc) -> Doc:
        if raw.get("name") != name or not isinstance(raw.get("versions"), dict):
            raise ValueError("its package.json is not the packument of this package")
        if self.is_local(name, raw):
            doc = clean(raw, local=True, base_url=self.base_url)
            if not doc.get("maintainers"):
                doc["maintainers"] = self.maintainers_of(doc)
            return doc
        if self.skip_cached:
            raise Skip("only cached by Verdaccio (--skip-cached)")
        found = cached_from(raw)
        uplink, record = found if found else ("verdaccio", {})
        etag = record.get("etag") if uplink in self.uplinks else None
        if self.uplinks and uplink not in self.uplinks:
            uplink = self.uplinks[0]  # so tarballs Verdaccio never fetched can be fetched here
        return clean(raw, local=False, base_url=self.base_url, uplink=uplink, etag=etag)

    def maintainers_of(self, doc: Doc) -> list[dict[str, Any]]:
        """Who may publish it next: Verdaccio 6 records no maintainers, so
        the latest version's publisher, else `--maintainer`, else nobody yet."""
        latest = doc["versions"].get(doc.get("dist-tags", {}).get("latest")) or {}
        for candidate in (latest.get("maintainers"), [latest.get("_npmUser")]):
            if isinstance(candidate, list) and all(isinstance(m, dict) and m.get("name") for m in candidate):
                return candidate
        return [{"name": self.maintainer}] if self.maintainer else []

    async def import_package(self, name: str) -> None:
        stored = await self.source.read_packument(name)
        incoming = self.prepare(name, orjson.loads(stored.data))
        local = not is_mirrored(incoming)
        current = await self.packages.read(name)
        _, wanted = merge(current.doc if current else None, incoming)  # raises Skip early
        files = set(await self.source.list_files(name))
        in_place = same_location(self.source, self.packages.store, name)
        missing, failed = [], []
        for version in wanted:
            manifest = incoming["versions"][version]
            filename = tarball_file_of(name, version, manifest)
            if filename not in files:
                missing.append(version)
                continue
            try:
                await self.import_tarball(name, filename, Expected.of(manifest), in_place)
            except IntegrityMismatch as exc:
                failed.append(version)
                self.summary.add("tarballs", "failed")
                self.summary.problems.append(f"{name}/{filename}: {exc}; not imported")
        if local:
            dropped = missing + failed
            if missing:
                self.summary.add("versions", "skipped", len(missing))
                self.summary.notes.append(
                    f"{name}: left out {', '.join(missing)} (no tarball in the Verdaccio storage)"
                )
            self.summary.add("versions", "failed", len(failed))
            incoming = without_versions(incoming, dropped)
            if not incoming["versions"]:
                raise VersionConflict("no version of it could be imported")

        added: list[str] = []

        def apply(doc: Doc | None) -> Doc:
            new, versions = merge(doc, incoming)
            added[:] = versions
            return new

        new, _ = await self.packages.update_packument(name, apply)
        self.summary.add("versions", "imported", len(added))
        self.summary.add("packages", "imported")
        if local:
            await self.packages.record_package(new)
            if not new.get("maintainers"):
                self.unowned.append(name)

    async def import_tarball(self, name: str, filename: str, expected: Expected, in_place: bool) -> None:
        """Verify and store one tarball unless the target already has these bytes."""
        if in_place:
            await drain(verified(self.source, name, filename, expected))
            self.summary.add("tarballs", "skipped")
            return
        try:
            await drain(verified(self.packages.store, name, filename, expected))
            self.summary.add("tarballs", "skipped")  # already there, and the right bytes
            return
        except (NotFound, IntegrityMismatch):
            pass
        await self.packages.store.write_tarball(name, filename, verified(self.source, name, filename, expected))
        self.summary.add("tarballs", "imported")
