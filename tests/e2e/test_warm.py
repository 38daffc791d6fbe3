"""`tarhold warm`: lockfile parsing, pre-fetching into storage from the fake upstream, and what the mirror policy makes it skip."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from registry.config import parse_config
from registry.ops.warm import (
    Wanted,
    from_package_lock,
    from_pnpm_lock,
    from_yarn_lock,
    read_lockfile,
    warm,
)
from storage.fs import FsPackageStore
from tests.support.fake_upstream import FakeUpstream

TARHOLD = str(Path(sys.executable).with_name("tarhold"))


def test_package_lock_v3_names_nested_scoped_and_aliased_packages() -> None:
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app", "version": "1.0.0"},
            "node_modules/a": {"version": "1.0.0", "resolved": "http://127.0.0.1/a/-/a-1.0.0.tgz"},
            "node_modules/a/node_modules/b": {"version": "2.0.0"},
            "node_modules/@s/c": {"version": "3.0.0"},
            "node_modules/alias": {"name": "real", "version": "4.0.0"},
            "node_modules/linked": {"link": True, "resolved": "packages/linked"},
            "node_modules/local": {"version": "0.0.1", "resolved": "file:../local"},
        },
    }
    assert sorted(from_package_lock(lock)) == [
        Wanted("@s/c", "3.0.0"), Wanted("a", "1.0.0"), Wanted("b", "2.0.0"), Wanted("real", "4.0.0"),
    ]


def test_package_lock_v1_walks_nested_dependencies() -> None:
    lock = {"lockfileVersion": 1, "dependencies": {
        "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0"}}},
        "x": {"version": "npm:y@3.0.0"},
    }}
    assert sorted(from_package_lock(lock)) == [Wanted("a", "1.0.0"), Wanted("b", "2.0.0"), Wanted("y", "3.0.0")]


def test_pnpm_lock_keys_of_every_version() -> None:
    lock = {"packages": {
        "/a@1.0.0": {}, "/@s/b@2.0.0(react@18.0.0)": {}, "c@3.0.0": {}, "/d/4.0.0": {}, "/e@5.0.0_peer@1.0.0": {},
    }}
    assert sorted(from_pnpm_lock(lock)) == [
        Wanted("@s/b", "2.0.0"), Wanted("a", "1.0.0"), Wanted("c", "3.0.0"), Wanted("d", "4.0.0"), Wanted("e", "5.0.0"),
    ]


def test_yarn_lock_classic_and_berry() -> None:
    classic = '''# yarn lockfile v1


"@s/b@^2.0.0", "@s/b@~2.0.1":
  version "2.0.3"
  resolved "http://127.0.0.1/@s/b/-/b-2.0.3.tgz"

a@^1.0.0:
  version "1.2.0"
'''
    berry = '''__metadata:
  version: 6

"c@npm:^3.0.0":
  version: 3.1.0
  resolution: "c@npm:3.1.0"
'''
    assert sorted(from_yarn_lock(classic)) == [Wanted("@s/b", "2.0.3"), Wanted("a", "1.2.0")]
    assert list(from_yarn_lock(berry)) == [Wanted("c", "3.1.0")]


def test_an_unknown_lockfile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Gemfile.lock"
    path.write_text("x")
    with pytest.raises(ValueError):
        read_lockfile(path)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


def lockfile_for(fake: FakeUpstream, names: list[str], path: Path) -> Path:
    packages = {"": {"name": "app", "version": "1.0.0"}}
    for name in names:
        for version in fake.packument(name)["versions"]:
            packages[f"node_modules/{name}/node_modules/{name}-{version}"] = {"name": name, "version": version}
    path.write_text(json.dumps({"lockfileVersion": 3, "packages": packages}))
    return path


async def test_warm_fetches_every_tarball_once_and_reports_cached_the_second_time(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    names = upstream.add_tree("warm-root", size=12)
    lock = lockfile_for(upstream, names, tmp_path / "package-lock.json")
    config = parse_config({
        "storage": str(tmp_path / "storage"),
        "uplinks": {"up": {"url": upstream.url}},
        "packages": {"**": {"access": "$all", "proxy": "up"}},
    })
    wanted = read_lockfile(lock)
    assert len(wanted) >= 12
    first = await warm(config, wanted, concurrency=8, progress=False)
    assert first == {"fetched": len(wanted)}
    store = FsPackageStore(tmp_path / "storage")
    for item in wanted:
        async with await store.open_tarball(item.name, f"{item.name.split('/')[-1]}-{item.version}.tgz") as reader:
            data = b"".join([chunk async for chunk in reader])
        assert data == upstream.tarball_bytes(item.name, item.version)
        assert upstream.tarball_count(item.name, item.version) == 1
    second = await warm(config, wanted, concurrency=8, progress=False)
    assert second == {"cached": len(wanted)}


async def test_warm_counts_what_the_upstream_does_not_have(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_package("present", ["1.0.0"])
    config = parse_config({
        "storage": str(tmp_path / "storage"),
        "uplinks": {"up": {"url": upstream.url}},
        "packages": {"**": {"access": "$all", "proxy": "up"}},
    })
    summary = await warm(config, [Wanted("present", "1.0.0"), Wanted("present", "9.9.9"), Wanted("absent", "1.0.0")], progress=False)
    assert summary == {"fetched": 1, "failed": 2}


async def test_warm_command_prints_a_summary(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_package("cli-pkg", ["1.0.0", "1.1.0"])
    lock = lockfile_for(upstream, ["cli-pkg"], tmp_path / "package-lock.json")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": str(tmp_path / "storage"),
        "uplinks": {"up": {"url": upstream.url}},
        "packages": {"**": {"access": "$all", "proxy": "up"}},
    }))
    process = await asyncio.create_subprocess_exec(
        TARHOLD, "warm", str(lock), "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert "2 package versions: 2 fetched, 0 already cached, 0 failed" in stdout.decode()


async def test_warm_command_lists_each_version_the_policy_skipped(upstream: FakeUpstream, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    upstream.add_package("fresh-pkg", ["1.0.0", "1.1.0"])
    upstream.set_published("fresh-pkg", "1.0.0", now - timedelta(days=30))
    upstream.set_published("fresh-pkg", "1.1.0", now - timedelta(hours=1))
    upstream.add_package("evil-pkg", ["2.0.0"])
    lock = tmp_path / "package-lock.json"
    lock.write_text(json.dumps({"lockfileVersion": 3, "packages": {
        "": {"name": "app", "version": "1.0.0"},
        "node_modules/fresh-pkg": {"version": "1.0.0"},
        "node_modules/x/node_modules/fresh-pkg": {"version": "1.1.0"},
        "node_modules/evil-pkg": {"version": "2.0.0"},
    }}))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": str(tmp_path / "storage"),
        "uplinks": {"up": {"url": upstream.url}},
        "packages": {"**": {"access": "$all", "proxy": "up"}},
        "policy": {"**": {"min_age": "3d", "block": [{"package": "evil-pkg", "reason": "MAL-1: backdoor"}]}},
    }))
    process = await asyncio.create_subprocess_exec(
        TARHOLD, "warm", str(lock), "-c", str(config), "-q",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    clears = (now - timedelta(hours=1) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%MZ")
    assert stdout.decode().splitlines() == [
        "skipped evil-pkg@2.0.0: evil-pkg@2.0.0 is blocked by rule policy.**.block[0] (MAL-1: backdoor)",
        f"skipped fresh-pkg@1.1.0: fresh-pkg@1.1.0 is quarantined until {clears} by policy min_age=3d",
        "3 package versions: 1 fetched, 0 already cached, 0 failed, 2 skipped by policy",
    ]
    assert upstream.tarball_count("fresh-pkg", "1.1.0") == 0 and upstream.tarball_count("evil-pkg", "2.0.0") == 0
