"""`tarhold warm` under a mirror policy: the command lists what it skipped, and a skip is no failure."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.support.fake_upstream import FakeUpstream

TARHOLD = str(Path(sys.executable).with_name("tarhold"))


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


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
