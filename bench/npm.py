"""`npm ci` of the bench project against one registry, with an empty npm
cache on tmpfs (disk writeback would skew repeated runs), timed, with the
registry's CPU time over the install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import Doc, rewrite_resolved
from bench.procstat import tree_cpu

NPM_TIMEOUT = 600.0


@dataclass(frozen=True)
class InstallResult:
    wall: float  # seconds, all installs started together to the last one done
    server_cpu: float  # seconds of the registry's CPU over that time
    ok: bool
    error: str = ""


def npm_binary() -> str | None:
    return shutil.which("npm")


class NpmProject:
    """Directories of one project copy on tmpfs: the project, its cache, a HOME."""

    def __init__(self, base: Path, package_json: Doc, lock: Doc, registry: str) -> None:
        self.base = base
        self.project = base / "project"
        self.cache = base / "cache"
        self.home = base / "home"
        self.registry = registry.rstrip("/") + "/"
        for directory in (self.project, self.home):
            directory.mkdir(parents=True, exist_ok=True)
        (self.project / "package.json").write_text(json.dumps(package_json, indent=2))
        (self.project / "package-lock.json").write_text(json.dumps(rewrite_resolved(lock, registry), indent=2))
        (self.home / ".npmrc").write_text("")

    def run_ci(self) -> subprocess.CompletedProcess[str]:
        shutil.rmtree(self.cache, ignore_errors=True)
        shutil.rmtree(self.project / "node_modules", ignore_errors=True)
        npm = npm_binary()
        assert npm is not None
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "npm_config_userconfig": str(self.home / ".npmrc"),
            "npm_config_update_notifier": "false",
        }
        argv = [npm, "ci", "--registry", self.registry, "--cache", str(self.cache), "--no-audit", "--no-fund",
                "--ignore-scripts", "--loglevel=error", "--fetch-retries=0"]
        return subprocess.run(argv, cwd=self.project, env=env, capture_output=True, text=True, timeout=NPM_TIMEOUT)


def install(projects: list[NpmProject], server_pid: int) -> InstallResult:
    """Run `npm ci` in every project at once; wall time and server CPU."""
    cpu_before = tree_cpu(server_pid)
    started = time.monotonic()
    with ThreadPoolExecutor(len(projects)) as pool:
        done = list(pool.map(lambda project: project.run_ci(), projects))
    wall = time.monotonic() - started
    cpu = tree_cpu(server_pid) - cpu_before
    failed = [result for result in done if result.returncode != 0]
    error = (failed[0].stdout + failed[0].stderr)[-2000:] if failed else ""
    return InstallResult(wall, cpu, not failed, error)
