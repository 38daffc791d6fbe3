"""The real `npm audit signatures` verifies what tarhold serves, and catches what it must.

A real `tarhold serve` on embedded storage mirrors a fake upstream that signs
its releases (ECDSA, its key at `/-/npm/v1/keys`), and takes publishes, which
it signs with its own key. A project installs one package of each kind; then
`npm audit signatures` must verify both registry signatures against the keys
tarhold lists (its own and its uplink's), still verify them after
`tarhold keys rotate`, and name a version whose stored integrity was
tampered with as having an invalid signature.

npm refreshes the Sigstore TUF repository before it asks the registry for
keys; `tests.support.fake_tuf.FakeTuf` answers for it on 127.0.0.1 (a TUF
repository with no targets, behind a CONNECT proxy that leads nowhere else),
so npm falls back to tarhold's `/-/npm/v1/keys`, as it does for every
registry but the public one.

The fake servers run in the test's event loop, so npm and the tarhold CLI run
in threads (`asyncio.to_thread`) and the loop keeps answering them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fixtures import (
    CLIENT_TIMEOUT,
    TARHOLD,
    NewNpm,
    Npm,
    Result,
    TarholdServer,
    embedded_tarhold,
    http_json,
    unique_name,
    write_package,
)
from tests.support.fake_tuf import TUF_HOST, FakeTuf
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.npm

VERSION = "1.0.0"
TAMPER_SEEN_TIMEOUT = 15.0  # the server re-reads a packument after cache.packument_ttl (2 s)
FALLBACK_WARNING = "Fetching verification keys using TUF failed"


@dataclass
class Installed:
    """A project that installed a package published to tarhold and one it mirrors."""

    server: TarholdServer
    npm: Npm
    tuf: FakeTuf
    project: Path
    published: str
    mirrored: str

    async def audit(self) -> Result:
        """`npm audit signatures` in the project; revalidating what npm cached (keys included)."""
        return await asyncio.to_thread(self.npm.run, "audit", "signatures", "--prefer-online", cwd=self.project)

    async def packument(self, name: str) -> dict[str, Any]:
        """The packument tarhold serves (in a thread: a mirrored one may ask the upstream)."""
        return await asyncio.to_thread(self.server.packument, name)

    async def dist(self, name: str) -> dict[str, Any]:
        return dict((await self.packument(name))["versions"][VERSION]["dist"])

    async def listed_keys(self) -> dict[str, Any]:
        """`GET /-/npm/v1/keys` (in a thread: tarhold asks the upstream for its keys): keyid → `expires`."""
        status, body = await asyncio.to_thread(http_json, "GET", f"{self.server.url}-/npm/v1/keys")
        assert status == 200, f"GET /-/npm/v1/keys: {status} {body}"
        return {key["keyid"]: key["expires"] for key in body["keys"]}


def mirror_config(upstream_url: str) -> dict[str, Any]:
    """Config sections: the fake upstream as the uplink of every package."""
    return {
        "uplinks": {"up": {"url": upstream_url, "timeout": "30s"}},
        "packages": {"**": {"access": "$all", "publish": "$authenticated", "proxy": "up"}},
    }


@asynccontextmanager
async def installed_project(tmp_path: Path, new_npm: NewNpm) -> AsyncIterator[Installed]:
    """The servers, a published and a mirrored package, and a project with both installed."""
    async with FakeUpstream() as upstream, FakeTuf(tmp_path / "tuf") as tuf:
        upstream.sign_releases()
        mirrored = unique_name("mirrored")
        upstream.add_package(mirrored, [VERSION])
        # tarhold makes no upstream request while it starts: blocking the loop here is harmless.
        with embedded_tarhold(tmp_path / "tarhold", config=mirror_config(upstream.url)) as server:
            npm = new_npm(server, "alice")
            npm.env.update(tuf.npm_env(npm.cache))
            published = unique_name("published")
            package = write_package(npm.workdir("package"), published, VERSION)
            await asyncio.to_thread(npm.publish, package)
            project = await asyncio.to_thread(npm.install, published, mirrored)
            yield Installed(server, npm, tuf, project, published, mirrored)


def assert_verified(result: Result, installed: Installed) -> None:
    """Both packages verified, with the keys from tarhold after a TUF refresh that worked."""
    assert result.returncode == 0, result.explain()
    assert "audited 2 packages" in result.stdout, result.explain()
    assert "2 packages have verified registry signatures" in result.stdout, result.explain()
    assert "invalid" not in result.stdout and "missing" not in result.stdout, result.explain()
    # npm got past the TUF refresh (through the proxy) and fell back to the registry's keys.
    assert f"{FALLBACK_WARNING}.  Fetching directly from {installed.server.url}" in result.stderr, result.explain()
    assert "timestamp.json" in installed.tuf.requests, installed.tuf.requests
    assert set(installed.tuf.tunnels) == {f"{TUF_HOST}:443"}, installed.tuf.tunnels


def rotate_keys(server: TarholdServer) -> str:
    """`tarhold keys rotate` on the server's config and storage; the new keyid."""
    assert server.storage.directory is not None
    workdir = server.storage.directory.parent  # embedded_tarhold: storage/ and tarhold.yaml
    argv = [str(TARHOLD), "keys", "rotate", "-c", str(workdir / "tarhold.yaml"),
            "--storage", str(server.storage.directory)]
    done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False)
    assert done.returncode == 0, f"$ {' '.join(argv)}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout.splitlines()[0].strip()


def forge_integrity(server: TarholdServer, name: str) -> str:
    """Give the stored packument of `name` another `dist.integrity` for VERSION, left unsigned.

    npm verifies the signature over `name@version:integrity` with the integrity of the
    packument the registry serves at audit time, so the version now fails verification.

    The embedded store keeps `<storage>/<name>/package.json`; it is replaced whole, as the
    store itself writes it, so the server never reads half of it."""
    assert server.storage.directory is not None
    path = server.storage.directory / name / "package.json"
    document = json.loads(path.read_bytes())
    forged = "sha512-" + base64.b64encode(hashlib.sha512(b"not what was published").digest()).decode()
    document["versions"][VERSION]["dist"]["integrity"] = forged
    temporary = path.with_name(".tmp-forged")
    temporary.write_text(json.dumps(document))
    os.replace(temporary, path)
    return forged


async def wait_until_served(installed: Installed, name: str, integrity: str) -> None:
    deadline = asyncio.get_running_loop().time() + TAMPER_SEEN_TIMEOUT
    while (await installed.dist(name))["integrity"] != integrity:
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"tarhold kept serving the old integrity of {name} for {TAMPER_SEEN_TIMEOUT:.0f}s")
        await asyncio.sleep(0.2)


async def test_audit_signatures_verifies_published_and_mirrored_versions_across_a_key_rotation(
    tmp_path: Path, new_npm: NewNpm
) -> None:
    async with installed_project(tmp_path, new_npm) as installed:
        server = installed.server
        signing_keyid = (await installed.dist(installed.published))["signatures"][0]["keyid"]
        upstream_keyid = (await installed.dist(installed.mirrored))["signatures"][0]["keyid"]
        assert await installed.listed_keys() == {signing_keyid: None, upstream_keyid: None}

        assert_verified(await installed.audit(), installed)

        new_keyid = await asyncio.to_thread(rotate_keys, server)
        keys = await installed.listed_keys()
        assert set(keys) == {new_keyid, signing_keyid, upstream_keyid}
        # The old key is listed until a moment after the version's publish time: it still verifies.
        assert keys[signing_keyid] is not None and keys[new_keyid] is None, keys
        published_at = (await installed.packument(installed.published))["time"][VERSION]
        assert datetime.fromisoformat(published_at) < datetime.fromisoformat(keys[signing_keyid]), keys

        assert_verified(await installed.audit(), installed)


async def test_audit_signatures_names_a_version_whose_stored_integrity_was_tampered_with(
    tmp_path: Path, new_npm: NewNpm
) -> None:
    async with installed_project(tmp_path, new_npm) as installed:
        forged = forge_integrity(installed.server, installed.published)
        await wait_until_served(installed, installed.published, forged)

        result = await installed.audit()

        assert result.returncode != 0, result.explain()
        assert "1 package has an invalid registry signature" in result.stdout, result.explain()
        assert f"{installed.published}@{VERSION} ({installed.server.url})" in result.stdout, result.explain()
        assert "1 package has a verified registry signature" in result.stdout, result.explain()
        assert installed.mirrored not in result.stdout, result.explain()
