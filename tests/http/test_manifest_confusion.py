"""A packument never shows one thing while the tarball ships another (issue 14, hardening)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from .packages import make_tarball, path_of, publish_body
from .users import bearer

ABBREVIATED = {"Accept": "application/vnd.npm.install-v1+json"}


async def test_dependencies_scripts_and_bin_served_are_the_tarballs(client: TestClient, alice: str) -> None:
    tarball = make_tarball("confused", "1.0.0", dependencies={"evil": "1.0.0"},
                           scripts={"postinstall": "node steal.js"}, bin="./cli.js")
    body = publish_body("confused", "1.0.0", tarball, dependencies={"left-pad": "^1.0.0"}, scripts={},
                        bin={"confused": "harmless.js"})
    response = await client.put(path_of("confused"), json=body, headers=bearer(alice))
    assert response.status == 201, await response.text()
    full = await (await client.get(path_of("confused"))).json()
    manifest = full["versions"]["1.0.0"]
    assert manifest["dependencies"] == {"evil": "1.0.0"}
    assert manifest["scripts"] == {"postinstall": "node steal.js"}
    assert manifest["bin"] == {"confused": "cli.js"}
    abbreviated = await (await client.get(path_of("confused"), headers=ABBREVIATED)).json()
    assert abbreviated["versions"]["1.0.0"]["hasInstallScript"] is True
    assert abbreviated["versions"]["1.0.0"]["dependencies"] == {"evil": "1.0.0"}


async def test_a_tarball_package_json_with_a_bad_field_is_refused(client: TestClient, alice: str) -> None:
    tarball = make_tarball("badpack", "1.0.0", dependencies=["not", "a", "map"])
    body = publish_body("badpack", "1.0.0", tarball, dependencies={})
    response = await client.put(path_of("badpack"), json=body, headers=bearer(alice))
    assert response.status == 422
    assert (await response.json())["error"].startswith("dependencies")
