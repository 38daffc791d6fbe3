"""Opt-in: npm installs a small real package tree through tarhold from a live upstream.

Skipped unless TARHOLD_LIVE_UPSTREAM names an upstream registry URL (the
public npm registry, or a company mirror): no real registry address is
written here, and the default test run never leaves the machine. Run it as

    TARHOLD_LIVE_UPSTREAM=<registry URL> pytest tests/e2e/test_live_upstream.py -s

The tree is chalk 4 (chalk, ansi-styles, supports-color, has-flag,
color-convert, color-name): tiny, dependency-nested, and long stable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.fixtures import TarholdServer, TarholdStorage
from tests.e2e.test_npm_mirror import AsyncNpm, start_mirror

LIVE_UPSTREAM_ENV = "TARHOLD_LIVE_UPSTREAM"
LIVE_UPSTREAM = os.environ.get(LIVE_UPSTREAM_ENV, "").strip()

pytestmark = [
    pytest.mark.npm,
    pytest.mark.skipif(not LIVE_UPSTREAM, reason=f"{LIVE_UPSTREAM_ENV} names no upstream registry URL"),
]

SPEC = "chalk@^4.1.0"
TREE = {  # package -> the major version chalk 4's ranges pin it to
    "chalk": 4,
    "ansi-styles": 4,
    "supports-color": 7,
    "has-flag": 4,
    "color-convert": 2,
    "color-name": 1,
}


async def test_npm_installs_a_real_package_tree_through_a_live_upstream(
    npm_cli: str, tmp_path: Path
) -> None:
    storage = TarholdStorage("embedded", directory=tmp_path / "storage")
    server: TarholdServer = await start_mirror(storage, tmp_path / "tarhold", LIVE_UPSTREAM.rstrip("/"))
    try:
        npm = AsyncNpm.create(npm_cli, server.url, tmp_path / "home")
        project = tmp_path / "project"
        project.mkdir()
        elapsed = await npm.ok("install", SPEC, cwd=project, cache=tmp_path / "cache", server=server)
        print(f"\n[live upstream] npm install {SPEC}: {elapsed:.2f}s")

        lock = json.loads((project / "package-lock.json").read_text())["packages"]
        for name, major in TREE.items():
            manifest = json.loads((project / "node_modules" / name / "package.json").read_text())
            assert manifest["name"] == name
            assert int(manifest["version"].split(".")[0]) == major, f"{name}@{manifest['version']}"
            resolved = lock[f"node_modules/{name}"]["resolved"]
            assert resolved.startswith(server.url), f"{name} resolved to {resolved}, not to tarhold"
        strays = [
            entry["resolved"] for key, entry in lock.items()
            if key and "resolved" in entry and not entry["resolved"].startswith(server.url)
        ]
        assert not strays, f"resolved URLs not on tarhold: {strays}"
    finally:
        server.stop()
