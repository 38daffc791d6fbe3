"""The soak run's clients: installs through the mirror, publishes, dist-tag changes, unpublishes.

Each `Client` is one sequential npm-like user (the run starts several):
it picks an operation by weight, sends the requests npm would send, and
records each in `Stats` and what the registry acknowledged in `Ledger`.

- install: the abbreviated packument (`Accept: application/vnd.npm.install-v1+json`,
  If-None-Match with the ETag the client kept), the version the range
  resolves to, recursively through `dependencies`, then every tarball,
  checked against its `dist.integrity` as npm checks it;
- publish: `PUT /{name}` with the new version and its tarball attached;
- dist-tag: `PUT|DELETE /-/package/{name}/dist-tags/{tag}`;
- unpublish of one version, as `npm unpublish name@version` does it:
  `GET /{name}?write=true`, `PUT /{name}/-rev/{rev}` with the document
  without that version, then `DELETE /{name}/-/{file}/-rev/{rev}`.

Every URL is on the registry at 127.0.0.1; a tarball URL elsewhere is an
anomaly and is not fetched.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from bench.soak_ledger import EXPECTED, Ledger, PrivatePackage, Stats
from bench.soak_upstream import BIG, LIBS, TREES
from tests.http.packages import make_tarball, path_of, publish_body, tarball_name
from tests.support.npm_ranges import satisfies

ABBREVIATED = "application/vnd.npm.install-v1+json"
TAGS = ("beta", "next", "canary")
MAX_LIVE_VERSIONS = 12  # a publish to a package holding more turns into an unpublish
MIN_LIVE_VERSIONS = 3  # an unpublish leaves at least this many less one
PAYLOAD_BYTES = (1_000, 24_000)
COLD_INSTALLS = 0.3  # installs that start without the packuments (and ETags) of earlier ones  # random (incompressible) data in each published tarball


@dataclass(frozen=True)
class Mix:
    """Relative weights of the operations each client picks from."""

    install: float = 0.75
    publish: float = 0.12
    dist_tag: float = 0.08
    unpublish: float = 0.05

    def choose(self, rng: random.Random) -> str:
        return rng.choices(("install", "publish", "dist_tag", "unpublish"),
                           (self.install, self.publish, self.dist_tag, self.unpublish))[0]


class NoAnswer(Exception):
    """A request got no usable answer (already recorded in Stats)."""


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def resolve(doc: dict[str, Any], spec: str) -> str | None:
    """The version npm would pick for `spec`: a dist-tag, else the highest satisfying release."""
    tags = doc.get("dist-tags") or {}
    if spec in tags:
        return str(tags[spec])
    candidates = [version for version in doc.get("versions") or {} if satisfies(version, spec)]
    latest = tags.get("latest")
    if latest in candidates:
        return str(latest)  # npm prefers `latest` when it satisfies the range
    return max(candidates, key=lambda v: tuple(int(part) for part in v.split("-")[0].split(".")), default=None)


class Client:
    """One npm-like user of the registry."""

    def __init__(self, session: aiohttp.ClientSession, registry: str, token: str, ledger: Ledger,
                 stats: Stats, rng: random.Random, mix: Mix) -> None:
        self.session = session
        self.registry = registry
        self.auth = {"Authorization": f"Bearer {token}"}
        self.ledger = ledger
        self.stats = stats
        self.rng = rng
        self.mix = mix
        self.documents: dict[str, tuple[str, dict[str, Any]]] = {}  # name -> (ETag, document)

    async def run_until(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            operation = self.mix.choose(self.rng)
            try:
                if operation == "install":
                    await self.install()
                elif operation == "publish":
                    await self.publish(self.rng.choice(self.ledger.packages))
                elif operation == "dist_tag":
                    await self.dist_tag(self.rng.choice(self.ledger.packages))
                else:
                    await self.unpublish(self.rng.choice(self.ledger.packages))
            except NoAnswer:
                pass
            self.stats.operations[operation] += 1

    # -- requests -----------------------------------------------------------------

    async def call(self, kind: str, method: str, url: str, *, headers: dict[str, str] | None = None,
                   body: bytes | None = None, expect: frozenset[int] | None = None) -> tuple[int, bytes, str]:
        """One request: (status, body, ETag). Unexpected statuses are anomalies."""
        if urlsplit(url).hostname != "127.0.0.1":
            self.stats.anomaly(kind, "a URL off the loopback, not requested", url=url)
            raise NoAnswer
        started = time.perf_counter()
        try:
            async with self.session.request(method, url, headers=headers, data=body) as response:
                data = await response.read()
                status, etag = response.status, response.headers.get("ETag", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.record(kind, 0, time.perf_counter() - started)
            self.stats.anomaly(kind, "no answer", url=url, method=method, error=repr(exc))
            raise NoAnswer from None
        self.stats.record(kind, status, time.perf_counter() - started)
        if status not in (expect if expect is not None else EXPECTED[kind]):
            self.stats.anomaly(kind, f"status {status}", url=url, method=method,
                               body=data[:300].decode("utf-8", "replace"))
        return status, data, etag

    def url(self, name: str, suffix: str = "") -> str:
        return self.registry + path_of(name) + suffix

    async def abbreviated(self, name: str, kind: str) -> dict[str, Any] | None:
        """The abbreviated packument, revalidated with the ETag kept from last time."""
        headers = {"Accept": ABBREVIATED}
        kept = self.documents.get(name)
        if kept is not None:
            headers["If-None-Match"] = kept[0]
        status, data, etag = await self.call(kind, "GET", self.url(name), headers=headers)
        if status == 304 and kept is not None:
            return kept[1]
        if status != 200:
            return None
        doc = self.parse(kind, data)
        if etag:
            self.documents[name] = (etag, doc)
        return doc

    def parse(self, kind: str, data: bytes) -> dict[str, Any]:
        """A JSON object from a 200 answer; anything else is an anomaly."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            self.stats.anomaly(kind, "not a JSON object", body=data[:300].decode("utf-8", "replace"))
            raise NoAnswer
        return doc

    async def tarball(self, kind: str, manifest: dict[str, Any], package: PrivatePackage | None = None) -> None:
        """GET a tarball and check it against the manifest's integrity."""
        dist = manifest.get("dist") or {}
        version = str(manifest.get("version"))
        expect = EXPECTED[kind] | ({404} if package and package.gone_or_going(version) else set())
        status, data, _ = await self.call(kind, "GET", str(dist.get("tarball")), expect=frozenset(expect))
        if status == 200 and dist.get("integrity") and integrity_of(data) != dist["integrity"]:
            self.stats.anomaly(kind, "integrity mismatch", url=dist.get("tarball"), declared=dist["integrity"])

    # -- operations ---------------------------------------------------------------

    async def install(self) -> None:
        """A tree, a lib, one version of the big package, or a private package; now and
        then from an empty cache (a fresh CI runner), otherwise revalidating with ETags."""
        if self.rng.random() < COLD_INSTALLS:
            self.documents.clear()
        pick = self.rng.random()
        if pick < 0.15:
            package = self.rng.choice(self.ledger.packages)
            doc = await self.abbreviated(package.name, "packument-private")
            latest = (doc or {}).get("dist-tags", {}).get("latest")
            if doc is not None and latest in doc.get("versions", {}):
                await self.tarball("tarball-private", doc["versions"][latest], package)
            return
        if pick < 0.25:
            doc = await self.abbreviated(BIG, "packument")
            if doc is not None:
                await self.tarball("tarball", doc["versions"][self.rng.choice(list(doc["versions"]))])
            return
        roots = [self.rng.choice(TREES)] if pick < 0.65 else self.rng.sample(LIBS, 3)
        await self.install_tree(roots)

    async def install_tree(self, roots: list[str]) -> None:
        resolved: dict[tuple[str, str], dict[str, Any]] = {}
        seen: dict[str, dict[str, Any] | None] = {}
        todo = [(root, "latest") for root in roots]
        while todo:
            name, spec = todo.pop()
            if name not in seen:
                seen[name] = await self.abbreviated(name, "packument")
            doc = seen[name]
            version = resolve(doc, spec) if doc is not None else None
            if doc is None or version is None:
                if doc is not None:
                    self.stats.anomaly("packument", "no version satisfies", name=name, spec=spec)
                continue
            if (name, version) in resolved:
                continue
            manifest = resolved[(name, version)] = doc["versions"][version]
            todo += list((manifest.get("dependencies") or {}).items())
        for manifest in resolved.values():
            await self.tarball("tarball", manifest)

    async def publish(self, package: PrivatePackage) -> None:
        if len(package.acked) >= MAX_LIVE_VERSIONS:
            await self.unpublish(package)
            return
        async with package.lock.shared():
            version = package.new_version()
            data = self.rng.randbytes(self.rng.randint(*PAYLOAD_BYTES))
            tarball = make_tarball(package.name, version, {
                "index.js": f"module.exports = {version!r};\n", "data.txt": base64.b64encode(data).decode()})
            body = publish_body(package.name, version, tarball, base=self.registry)
            headers = {**self.auth, "Content-Type": "application/json"}
            try:
                status, _, _ = await self.call("publish", "PUT", self.url(package.name), headers=headers,
                                               body=orjson.dumps(body))
            except NoAnswer:
                package.uncertain.add(version)
                raise
            if status == 201:
                package.acked[version] = integrity_of(tarball)
            else:
                package.refused.add(version)

    async def dist_tag(self, package: PrivatePackage) -> None:
        async with package.lock.exclusive():
            if not package.acked:
                return
            base = f"{self.registry}/-/package{path_of(package.name)}/dist-tags/"
            if package.tags and self.rng.random() < 0.5:
                tag = self.rng.choice(sorted(package.tags))
                status, _, _ = await self.call("dist-tag-rm", "DELETE", base + tag, headers=self.auth)
                if status == 200:
                    package.tags.pop(tag)
                return
            tag, version = self.rng.choice(TAGS), self.rng.choice(sorted(package.acked))
            headers = {**self.auth, "Content-Type": "application/json"}
            status, _, _ = await self.call("dist-tag-add", "PUT", base + tag, headers=headers,
                                           body=orjson.dumps(version))
            if status == 201:
                package.tags[tag] = version

    async def read_for_write(self, package: PrivatePackage) -> dict[str, Any] | None:
        headers = {**self.auth, "Accept": "application/json"}
        status, data, _ = await self.call("unpublish-read", "GET", self.url(package.name, "?write=true"),
                                          headers=headers)
        return self.parse("unpublish-read", data) if status == 200 else None

    async def unpublish(self, package: PrivatePackage) -> None:
        async with package.lock.exclusive():
            if len(package.acked) < MIN_LIVE_VERSIONS:
                return
            doc = await self.read_for_write(package)
            if doc is None:
                return
            missing = sorted(set(package.acked) - set(doc.get("versions") or {}))
            if missing:
                # Sending this document back would unpublish them: stop here.
                self.stats.anomaly("unpublish-read", "acknowledged versions missing", name=package.name,
                                   versions=missing, rev=doc.get("_rev"))
                return
            live = sorted(package.acked, key=lambda v: int(v.rsplit(".", 1)[1]))
            version = live[0] if self.rng.random() < 0.7 else self.rng.choice(live)
            body = without_version(doc, version)
            headers = {**self.auth, "Content-Type": "application/json"}
            package.unpublishing.add(version)
            try:
                status, _, _ = await self.call("unpublish-put", "PUT", self.url(package.name, f"/-rev/{doc['_rev']}"),
                                               headers=headers, body=orjson.dumps(body))
                if status != 201:
                    return
                package.unpublished[version] = package.acked.pop(version)
                package.tags = {tag: v for tag, v in package.tags.items() if v != version}
            finally:
                package.unpublishing.discard(version)
            again = await self.read_for_write(package)
            rev = (again or doc).get("_rev")
            filename = tarball_name(package.name, version)
            await self.call("unpublish-delete-tarball", "DELETE",
                            f"{self.registry}/{package.name}/-/{filename}/-rev/{rev}", headers=self.auth)


def without_version(doc: dict[str, Any], version: str) -> dict[str, Any]:
    """The document `npm unpublish name@version` PUTs back (libnpmpublish's unpublish)."""
    body = {key: value for key, value in doc.items() if key not in ("_attachments", "_revisions")}
    versions = {v: m for v, m in (doc.get("versions") or {}).items() if v != version}
    tags = {tag: v for tag, v in (doc.get("dist-tags") or {}).items() if v != version}
    if "latest" not in tags and versions:
        tags["latest"] = max(versions, key=lambda v: tuple(int(p) for p in v.split("-")[0].split(".")))
    body["versions"], body["dist-tags"] = versions, tags
    return body
