"""The package sets of the fake upstream: a dependency tree npm resolves and
installs, and a multi-megabyte packument; and the range helper that checks them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import aiohttp
import pytest
import semver

from tests.http.fake_upstream.helpers import sri
from tests.support.fake_upstream import FakeUpstream
from tests.support.npm_ranges import satisfies


def test_range_helper_matches_npm_semantics() -> None:
    assert satisfies("1.4.1", "^1.2.0") and not satisfies("2.0.0", "^1.2.0")
    assert satisfies("1.4.1", "~1.4.0") and not satisfies("1.5.0", "~1.4.0")
    assert satisfies("1.4.1", ">=1.1.0 <2.0.0") and not satisfies("1.0.0", ">=1.1.0 <2.0.0")
    assert satisfies("1.9.9", "1.x") and not satisfies("2.0.0", "1.x")
    assert satisfies("0.2.5", "^0.2.3") and not satisfies("0.3.0", "^0.2.3")
    assert satisfies("3.0.0", "^1.0.0 || ^3.0.0") and satisfies("1.2.3", "1.2.3")


async def test_tree_dependency_graph_is_closed(upstream: FakeUpstream) -> None:
    names = upstream.add_tree("forest", size=12)
    assert len(names) == 12 and names[0] == "forest"
    docs = {name: upstream.packument(name) for name in names}
    dependents: dict[str, set[str]] = {}
    for name, doc in docs.items():
        for manifest in doc["versions"].values():
            for dep, dep_range in (manifest.get("dependencies") or {}).items():
                assert dep in docs, f"{name} depends on {dep}, which the fake does not serve"
                assert any(satisfies(version, dep_range) for version in docs[dep]["versions"]), (name, dep, dep_range)
                dependents.setdefault(dep, set()).add(name)

    # What npm would install: the highest satisfying version of each dependency, from the root's latest.
    resolved: dict[str, str] = {}
    queue = [("forest", "^1.0.0")]
    while queue:
        name, dep_range = queue.pop()
        version = max((v for v in docs[name]["versions"] if satisfies(v, dep_range)), key=semver.Version.parse)
        if resolved.setdefault(name, version) == version:
            queue += list((docs[name]["versions"][version].get("dependencies") or {}).items())
    assert len(resolved) >= 10 and set(resolved) == set(names)
    assert any(name.startswith("@") for name in resolved)
    assert any("bin" in docs[name]["versions"][version] for name, version in resolved.items())
    shared = [dep for dep, users in dependents.items() if len(users) >= 3]
    assert shared and resolved[shared[0]] == "1.4.1" and docs[shared[0]]["dist-tags"]["latest"] == "2.0.0"


async def test_large_packument_is_several_megabytes(upstream: FakeUpstream, client: aiohttp.ClientSession) -> None:
    upstream.add_large_packument("huge")
    async with client.get(f"{upstream.url}/huge") as response:
        body = await response.read()
    assert len(body) > 2_000_000
    doc = upstream.packument("huge")
    assert len(doc["versions"]) == 3000 and len(doc["readme"]) > 10_000
    version = "29.9.9"
    assert doc["versions"][version]["dist"]["integrity"] == sri(upstream.tarball_bytes("huge", version))


@pytest.mark.npm
async def test_real_npm_installs_the_tree(upstream: FakeUpstream, tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH", pytrace=False)
    names = upstream.add_tree("npm-tree", size=12)
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name": "consumer", "version": "1.0.0", "private": true}')
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "npm_config_userconfig": str(tmp_path / "npmrc"),
        "npm_config_globalconfig": str(tmp_path / "global-npmrc"),
        "npm_config_cache": str(tmp_path / "cache"),
        "npm_config_registry": upstream.url + "/",
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
    }
    process = await asyncio.create_subprocess_exec(
        npm, "install", "npm-tree", cwd=project, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()
    installed = {name for name in names if (project / "node_modules" / name / "package.json").is_file()}
    assert installed == set(names)
    assert (project / "node_modules" / ".bin" / "npm-tree-cli").exists()
    assert upstream.tarball_count("npm-tree-leaf", "1.4.1") == 1
