"""A local fake npm registry for the caching-mirror tests, on 127.0.0.1.

`FakeUpstream` serves documents built by `tests.support.fake_upstream_docs`
(real shape, made by code), optionally under a path prefix as private
registries do, and lets a test inject faults per package or tarball and observe every
request it received::

    async with FakeUpstream() as upstream:
        upstream.add_package("left-pad", ["1.0.0", "1.1.0"])
        upstream.stall("left-pad", 5.0)
        ...
        assert upstream.count("left-pad") == 1

Routes (all under the prefix): `GET|HEAD /{name}` (also `/@scope%2fname` and
`/@scope/name`) → the packument, or the abbreviated document for
`Accept: application/vnd.npm.install-v1+json`, with a strong ETag (304 on
If-None-Match) and Last-Modified; `/{name}/{version-or-tag}` → one manifest;
`/{name}/-/{file}.tgz` → the tarball; `/-/v1/search`; `/-/ping`;
`/-/package/{name}/dist-tags`; `/-/npm/v1/keys` (after `sign_releases()`);
`/-/npm/v1/attestations/{name}@{version}` (of versions given one with `attest()`);
`POST /-/npm/v1/security/advisories/bulk` and `/-/npm/v1/security/audits/quick`.

Fault order for a request: recorded → stall → down (503) → auth (401) →
fail(status) → served, where tarball faults (drop, corrupt, no length, slow)
shape the body. The request handling is in
`tests.support.fake_upstream_serving`; the documents in
`tests.support.fake_upstream_docs` and `tests.support.fake_upstream_sets`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from registry.domain.signing import KEYTYPE, SigningKey, keyid_of, public_der
from tests.support.fake_upstream_docs import (
    SLSA_PROVENANCE_V1,
    PackageRecord,
    build_version,
    highest_stable,
    iso,
    provenance_bundle,
    tarball_filename,
)
from tests.support.fake_upstream_serving import (
    ABBREVIATED_TYPE,
    HOST,
    SHUTDOWN_TIMEOUT,
    RecordedRequest,
    UpstreamServing,
)
from tests.support.fake_upstream_sets import large_readme, large_versions, tree_spec
from tests.support.loopback_site import listen

__all__ = ["ABBREVIATED_TYPE", "HOST", "FakeUpstream", "RecordedRequest"]


class FakeUpstream(UpstreamServing):
    """A fake npm registry (aiohttp) with fault injection and request recording."""

    def __init__(self, *, prefix: str = "", port: int = 0, gzip: bool = False) -> None:
        """`prefix` serves everything under a path, as Artifactory-style
        registries do; `gzip` compresses documents for clients that accept it.
        """
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.gzip = gzip
        self.requests: list[RecordedRequest] = []
        self._port = port
        self._started_once = False
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._packages: dict[str, PackageRecord] = {}
        self._rendered = {}
        self._clock = 0
        self._auth: str | None = None
        self._audit_enabled = True
        self._signer: SigningKey | None = None
        self.clear_faults()

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1; after a stop(), on the same port again."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner, self._port = await listen(app, self._port, shutdown_timeout=SHUTDOWN_TIMEOUT)
        self._stopping = asyncio.Event()
        self._runner = runner
        self._started_once = True

    async def stop(self) -> None:
        """Close the listener and every connection: clients now get connection
        refused. Stalled and trickling answers end at once (their connections
        are aborted). Packages, faults and recorded requests are kept.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- packages -----------------------------------------------------------

    def add_package(
        self,
        name: str,
        versions: Mapping[str, Mapping[str, Any]] | Sequence[str],
        *,
        latest: str | None = None,
        files: Mapping[str, str] | None = None,
    ) -> None:
        """Publish versions of `name` (adding to any it has: an upstream
        release). `versions` maps each version to extra manifest fields
        (dependencies, bin, scripts, engines, description, deprecated...);
        `files` are extra tarball files for every version. `latest` defaults
        to the highest release.
        """
        if not versions:
            raise ValueError(f"add_package({name!r}) needs at least one version")
        fields_by_version = (
            {version: {} for version in versions} if not isinstance(versions, Mapping) else dict(versions)
        )
        record = self._packages.get(name) or PackageRecord(name=name)
        for version, fields in fields_by_version.items():
            manifest, tarball = build_version(name, version, fields, files)
            if self._signer is not None:
                signature = self._signer.sign(name, version, manifest["dist"]["integrity"])
                manifest = {**manifest, "dist": {**manifest["dist"], "signatures": [signature]}}
            record.manifests[version] = manifest
            record.tarballs[version] = tarball
            record.times[version] = self._tick()
            if not record.readme:
                record.readme = (files or {}).get("README.md") or f"# {name}\n\n{manifest['description']}\n"
        record.times.setdefault("created", record.times[next(iter(fields_by_version))])
        record.times["modified"] = self._tick()
        if latest is not None and latest not in record.manifests:
            raise ValueError(f"latest={latest!r} is not a version of {name}")
        record.dist_tags["latest"] = latest or highest_stable(record.manifests)
        record.revision += 1
        # `time` lists created and modified first, then versions in publish order.
        versions_times = {key: value for key, value in record.times.items() if key not in ("created", "modified")}
        record.times = {"created": record.times["created"], "modified": record.times["modified"], **versions_times}
        self._packages[name] = record
        self._rendered.pop(name, None)

    def sign_releases(self) -> None:
        """From now on sign every version added (`dist.signatures`, as a public registry does) and
        serve the key at `/-/npm/v1/keys`; without it the fake has no keys (404), like many registries."""
        private = ec.generate_private_key(ec.SECP256R1())
        self._signer = SigningKey(keyid_of(public_der(private)), private)

    def signing_keys(self) -> list[dict[str, Any]]:
        if self._signer is None:
            return []
        der = public_der(self._signer.private)
        return [{"expires": None, "keyid": self._signer.keyid, "keytype": KEYTYPE, "scheme": KEYTYPE,
                 "key": base64.b64encode(der).decode()}]

    def attest(
        self, name: str, version: str, bundle: Mapping[str, Any] | None = None,
        predicate_type: str = SLSA_PROVENANCE_V1,
    ) -> dict[str, Any]:
        """Give a version a provenance attestation, as the public registry holds them: its
        `dist.attestations` names it and `/-/npm/v1/attestations/{name}@{version}` serves it.
        `bundle` defaults to one made for the version's tarball; returns the bundle."""
        record = self._packages[name]
        made = dict(bundle) if bundle is not None else provenance_bundle(
            name, version, record.tarballs[version], predicate_type=predicate_type)
        record.attestations[version] = [{"predicateType": predicate_type, "bundle": made}]
        record.revision += 1
        self._rendered.pop(name, None)
        return made

    def set_published(self, name: str, version: str, moment: datetime | None) -> None:
        """Say `version` was published at `moment` (None: no `time` entry at all)."""
        record = self._packages[name]
        if moment is None:
            record.times.pop(version, None)
        else:
            record.times[version] = iso(moment)
        record.revision += 1
        self._rendered.pop(name, None)

    def remove_package(self, name: str) -> None:
        """Forget `name`: it answers 404 from now on."""
        self._packages.pop(name, None)
        self._rendered.pop(name, None)

    def add_tree(self, root: str = "tree-root", size: int = 12) -> list[str]:
        """`size` packages reachable from `root` (nested modules, a shared leaf
        under compatible ranges, a scoped package, a CLI with a bin), so
        `npm install root` resolves all of them. Returns the names, root first.
        """
        spec = tree_spec(root, size)
        for name, versions in spec.items():
            self.add_package(name, versions)
        return list(spec)

    def add_large_packument(self, name: str, versions: int = 3000) -> None:
        """A multi-megabyte packument: `versions` heavy manifests and a long readme."""
        self.add_package(name, large_versions(name, versions))
        # On the document only: in every tarball it would cost seconds of gzip.
        self._packages[name].readme = large_readme(name)
        self._rendered.pop(name, None)

    def tarball_bytes(self, name: str, version: str) -> bytes:
        """The true bytes of a tarball (what `dist.integrity` describes)."""
        return self._packages[name].tarballs[version]

    def tarball_url(self, name: str, version: str) -> str:
        return f"{self.url}/{name}/-/{tarball_filename(name, version)}"

    # -- faults -------------------------------------------------------------

    def fail(self, name: str, status: int) -> None:
        """Answer `status` for the packument, manifests and tarballs of `name`
        (or for one path under the prefix, when `name` starts with "/").
        """
        self._fail[name] = status

    def stall(self, name: str, seconds: float) -> None:
        """Wait `seconds` before answering anything about `name` (or a path)."""
        self._stall[name] = seconds

    def drop_mid_tarball(self, name: str, version: str, after_bytes: int) -> None:
        """Send the full Content-Length, `after_bytes` of the body, then close."""
        self._drop[(name, version)] = after_bytes

    def corrupt_tarball(self, name: str, version: str) -> None:
        """Serve bytes of the right length that fail the integrity check."""
        self._corrupt.add((name, version))

    def no_content_length(self, name: str, version: str) -> None:
        """Serve the tarball chunked, without Content-Length."""
        self._chunked.add((name, version))

    def slow_tarball(self, name: str, version: str, chunk: int, delay: float) -> None:
        """Trickle the tarball: `chunk` bytes, then `delay` seconds, and again."""
        if chunk <= 0:
            raise ValueError("chunk must be positive")
        self._slow[(name, version)] = (chunk, delay)

    def set_down(self, down: bool) -> None:
        """Answer 503 to every request while down. For connection refused,
        stop() and later start() again: the port stays the same.
        """
        self._down = down

    def require_auth(self, header_value: str | None) -> None:
        """Answer 401 to every request whose Authorization is not exactly this
        (None lifts the requirement). Not a fault: clear_faults() keeps it.
        """
        self._auth = header_value

    def disable_audit(self, disabled: bool = True) -> None:
        """Make the audit endpoints answer 404, as registries without audit do."""
        self._audit_enabled = not disabled

    def clear_faults(self) -> None:
        """Lift fail, stall, the tarball faults and set_down."""
        self._fail: dict[str, int] = {}
        self._stall: dict[str, float] = {}
        self._drop: dict[tuple[str, str], int] = {}
        self._corrupt: set[tuple[str, str]] = set()
        self._chunked: set[tuple[str, str]] = set()
        self._slow: dict[tuple[str, str], tuple[int, float]] = {}
        self._down = False

    # -- observation --------------------------------------------------------

    def count(self, path_or_name: str) -> int:
        """Requests for the packument of a name (any form, GET or HEAD), or, for
        an argument starting with "/", requests to that exact raw path under
        the prefix (given with or without it; query string ignored).
        """
        if path_or_name.startswith("/"):
            targets = {self.prefix + path_or_name}
            if path_or_name.startswith(self.prefix + "/"):
                targets.add(path_or_name)
            return sum(1 for request in self.requests if request.path.split("?", 1)[0] in targets)
        return sum(
            1 for request in self.requests if request.kind == "packument" and request.name == path_or_name
        )

    def tarball_count(self, name: str, version: str) -> int:
        return sum(
            1
            for request in self.requests
            if request.kind == "tarball" and request.name == name and request.version == version
        )

    def reset_counts(self) -> None:
        """Forget the recorded requests."""
        self.requests.clear()
