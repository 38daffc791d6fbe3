"""The soak run's last check: what the registry acknowledged is what it serves.

For every private package in the `Ledger`, from the full packument and the
tarballs, after the traffic has stopped:

- every acknowledged version has its manifest in the packument, with the
  integrity the publish sent, and its tarball answers 200 with bytes whose
  sha512 is that integrity;
- every version unpublished with success is gone from `versions`, and its
  tarball answers 404;
- the dist-tags other than `latest` are the ones the clients last set, and
  `latest` names a live version;
- no version is there that the clients never published (versions whose
  publish got no answer may be there or not).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from bench.soak_ledger import Ledger, PrivatePackage
from bench.soak_traffic import TAGS, integrity_of
from tests.http.packages import path_of, tarball_name


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    async with session.get(url, headers=headers) as response:
        return response.status, await response.read()


async def verify_package(session: aiohttp.ClientSession, registry: str, package: PrivatePackage,
                         auth: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    """(tarballs checked, problems) for one package."""
    problems: list[dict[str, Any]] = []
    name = package.name

    def problem(what: str, **detail: Any) -> None:
        problems.append({"package": name, "what": what, **detail})

    status, data = await _get(session, registry + path_of(name), {**auth, "Accept": "application/json"})
    if status != 200:
        problem(f"packument answered {status}", body=data[:300].decode("utf-8", "replace"))
        return 0, problems
    doc = orjson.loads(data)
    versions = doc.get("versions") or {}
    checked = 0
    for version, integrity in sorted(package.acked.items()):
        manifest = versions.get(version)
        if manifest is None:
            problem("acknowledged version missing from the packument", version=version)
            continue
        dist = manifest.get("dist") or {}
        if dist.get("integrity") != integrity:
            problem("integrity differs from the published one", version=version, served=dist.get("integrity"))
        status, body = await _get(session, str(dist.get("tarball")), auth)
        checked += 1
        if status != 200:
            problem(f"tarball answered {status}", version=version, url=dist.get("tarball"))
        elif integrity_of(body) != integrity:
            problem("tarball bytes do not match the integrity", version=version)
    for version in sorted(package.unpublished):
        if version in versions:
            problem("unpublished version is back in the packument", version=version)
        url = f"{registry}/{name}/-/{tarball_name(name, version)}"
        status, _ = await _get(session, url, auth)
        if status != 404:
            problem(f"unpublished version's tarball answered {status}", version=version)
    tags = doc.get("dist-tags") or {}
    for tag in TAGS:
        if tags.get(tag) != package.tags.get(tag):
            problem("dist-tag differs", tag=tag, served=tags.get(tag), expected=package.tags.get(tag))
    if tags.get("latest") not in versions:
        problem("latest names no live version", latest=tags.get("latest"))
    unknown = sorted(set(versions) - set(package.acked) - package.uncertain)
    if unknown:
        problem("versions the clients did not see acknowledged", versions=unknown)
    return checked, problems


async def verify_ledger(session: aiohttp.ClientSession, registry: str, ledger: Ledger,
                        token: str) -> dict[str, Any]:
    """The whole ledger: counts, and every problem found."""
    auth = {"Authorization": f"Bearer {token}"}
    checked, problems = 0, []
    for package in ledger.packages:
        tarballs, found = await verify_package(session, registry, package, auth)
        checked += tarballs
        problems += found
    return {
        **ledger.summary(),
        "tarballs_checked": checked,
        "unpublished_checked": sum(len(p.unpublished) for p in ledger.packages),
        "problems": problems,
        "ok": not problems,
    }
