"""Client projects for the end-to-end tests: an empty npm project, and yarn 4's settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.fixtures import TarholdServer, client_env


def new_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty project and the environment for a client run in it."""
    home = tmp_path / "home"
    home.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(
        json.dumps({"name": "e2e-consumer", "version": "0.0.0", "private": True}) + "\n"
    )
    return project, client_env(home)


def yarnrc(server: TarholdServer, tmp_path: Path, token: str | None = None) -> str:
    """.yarnrc.yml for yarn 4 on a plain-http registry on 127.0.0.1 (with `token`, as its user),
    with yarn's caches in tmp_path."""
    settings: dict[str, Any] = {
        "npmRegistryServer": server.url.rstrip("/"),
        **({"npmAuthToken": token} if token else {}),
        "unsafeHttpWhitelist": ["127.0.0.1"],
        "enableTelemetry": False,
        "nodeLinker": "node-modules",
        "enableGlobalCache": False,
        "cacheFolder": str(tmp_path / "yarn-cache"),
        "globalFolder": str(tmp_path / "yarn-global"),
        # yarn's own release-age gate (a day by default in recent 4.x) would hide what
        # tarhold decides to show.
        "npmMinimalAgeGate": 0,
    }
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())
