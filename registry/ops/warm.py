"""`tarhold warm LOCKFILE`: pre-fetch every packument and tarball a lockfile
names into storage, so a wave of CI builds finds a warm registry.

It runs in-process on the config's storage and uplinks (no server needed) and
goes through the same mirror as requests do, so everything it stores was
verified against the packument's integrity. It holds the lockfile to the
same mirror policy as requests (the config's `policy:` and the database's
run-time rules): a version clients would be refused (quarantined, blocked,
or replaced by another) is not downloaded, and the summary lists it with the
refusal; a skip is not a failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

from registry.config import Config
from registry.domain.errors import RegistryError
from registry.domain.mirror_policy import MirrorPolicy, View
from registry.domain.names import tarball_filename
from registry.domain.packages import Packages
from registry.domain.policy import refusal
from registry.domain.rules import rule_for, storage_folder
from storage.backends import build_backends
from storage.base import NotFound
from uplinks.errors import MirrorError
from uplinks.mirror import Mirror

LOG = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class Wanted:
    name: str
    version: str


def read_lockfile(path: Path) -> list[Wanted]:
    """(name, version) pairs from package-lock.json (v1–v3), pnpm-lock.yaml or yarn.lock."""
    text = path.read_text(encoding="utf-8")
    if path.name.endswith(".json"):
        found = from_package_lock(json.loads(text))
    elif path.name.startswith("pnpm-lock"):
        found = from_pnpm_lock(yaml.safe_load(text) or {})
    elif path.name.startswith("yarn"):
        found = from_yarn_lock(text)
    else:
        raise ValueError(f"{path.name}: not a package-lock.json, pnpm-lock.yaml or yarn.lock")
    return sorted(set(found))


def from_package_lock(lock: dict) -> Iterable[Wanted]:  # type: ignore[type-arg]
    for path, entry in (lock.get("packages") or {}).items():
        if not path or entry.get("link") or "version" not in entry:
            continue
        if entry.get("resolved", "").startswith(("file:", "git+", "git:", "github:")):
            continue
        name = entry.get("name") or path.rsplit("node_modules/", 1)[-1]
        yield Wanted(name, entry["version"])
    if not lock.get("packages"):  # lockfileVersion 1

        def walk(deps: dict) -> Iterable[Wanted]:  # type: ignore[type-arg]
            for name, entry in deps.items():
                version = entry.get("version", "")
                if version.startswith("npm:"):  # alias: npm:real-name@1.2.3
                    name, _, version = version[4:].rpartition("@")
                if re.match(r"^\d", version):
                    yield Wanted(name, version)
                yield from walk(entry.get("dependencies") or {})

        yield from walk(lock.get("dependencies") or {})


PNPM_KEY = re.compile(r"^/?(?P<name>(@[^/@]+/)?[^/@(]+)[@/](?P<version>\d[^(_/]*)")


def from_pnpm_lock(lock: dict) -> Iterable[Wanted]:  # type: ignore[type-arg]
    for key in (lock.get("packages") or {}):
        match = PNPM_KEY.match(str(key))
        if match:
            yield Wanted(match["name"], match["version"])


def from_yarn_lock(text: str) -> Iterable[Wanted]:
    name: str | None = None
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")) and line.rstrip().endswith(":"):
            if line.startswith("__metadata"):
                name = None
                continue
            spec = line.rstrip(":").split(",")[0].strip().strip('"')
            spec = spec.replace("@npm:", "@")
            name = spec[: spec.rindex("@")] if spec.rfind("@") > 0 else spec
        elif name and line.strip().startswith("version"):
            version = line.split(None, 1)[1].strip().strip('"').lstrip(":").strip().strip('"')
            if re.match(r"^\d", version):
                yield Wanted(name, version)
            name = None


class Summary(Counter[str]):
    """How many versions were fetched / cached / skipped / failed, and why each skipped one was."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[Wanted, str] = {}  # the refusal a client would get


class Skipped(Exception):
    """The mirror policy hides this version from clients: it is not fetched."""


async def warm(config: Config, wanted: list[Wanted], *, concurrency: int = 16, progress: bool = True) -> Summary:
    """Fetch what is missing; a count of fetched / cached / skipped / failed."""
    store, database = build_backends(
        config.store.backend, path=config.store.path, section=config.store.section,
        folder=storage_folder(config.packages),
    )
    await store.open()
    await database.open()
    policy = MirrorPolicy(config.policy)
    packages = Packages(store, database, policy=policy)
    mirror = Mirror(packages, config.uplinks)
    summary = Summary()
    bar = _NoBar()
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Wanted) -> None:
        async with gate:
            try:
                summary[await warm_one(packages, mirror, config, item)] += 1
            except Skipped as exc:
                summary["skipped"] += 1
                summary.skipped[item] = str(exc)
            except (RegistryError, MirrorError, OSError) as exc:
                summary["failed"] += 1
                LOG.warning("%s@%s: %s", item.name, item.version, getattr(exc, "message", exc))
            except Exception:
                summary["failed"] += 1
                LOG.exception("%s@%s failed", item.name, item.version)
            bar.update(1)

    try:
        await policy.reload(database)  # the admins' run-time rules, as the server applies them
        await mirror.start()
        bar = _progress_bar(len(wanted), progress)
        await asyncio.gather(*(one(item) for item in wanted))
    finally:
        bar.close()
        await mirror.close()
        await database.close()
        await store.close()
    return summary


async def warm_one(packages: Packages, mirror: Mirror, config: Config, item: Wanted) -> str:
    """"cached", "fetched" or "failed" for one package version; Skipped when the policy hides it."""
    rule = rule_for(config.packages, item.name)
    if rule is None:
        return "failed"
    filename = tarball_filename(item.name, item.version)
    if packages.policy.active:
        # Judged before the cache is looked at: a tarball stored before a rule came
        # is refused to clients all the same, so it is not ready for them either.
        current = await mirror.packument(item.name, rule.proxy)
        if current is not None:
            check_policy(item, filename, await packages.view(item.name, current))
    try:
        reader = await packages.store.open_tarball(item.name, filename)
        await reader.aclose()
        return "cached"
    except NotFound:
        pass
    current = await mirror.packument(item.name, rule.proxy)
    if current is None or item.version not in current.doc.get("versions", {}):
        LOG.warning("%s@%s: not found on any uplink", item.name, item.version)
        return "failed"
    download = await mirror.tarball(item.name, filename, rule.proxy)
    if download is None:
        return "failed"
    async for _ in download.follow():
        pass
    return "fetched"


def check_policy(item: Wanted, filename: str, view: View) -> None:
    """Raise Skipped when clients are refused `item` or its tarball (hidden, or replaced by another)."""
    reason = MirrorPolicy.withheld(view, item.version, filename)
    if reason is not None:
        raise Skipped(refusal(item.name, item.version, reason))


class _NoBar:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def _progress_bar(total: int, enabled: bool):  # type: ignore[no-untyped-def]
    if not enabled:
        return _NoBar()
    return tqdm(total=total, unit="pkg", desc="warming", dynamic_ncols=True)
