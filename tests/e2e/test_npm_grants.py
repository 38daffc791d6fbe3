"""Granular tokens with the real npm CLI, on both storage backends.

The registry keeps two private scopes (`@acme/*`, `@other/*`: access and
publish `$authenticated`). A token limited to `pkg:read=@acme/*` installs
`@acme/x` but not `@other/y`, and publishes nothing; a token with
`pkg:read+write=@acme/*` publishes `@acme/x` but not `@other/y`. The tokens
are created through `POST /-/npm/v1/tokens` with `grants`, as a user would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import BACKENDS, make_storage
from tests.e2e.fixtures import (
    PASSWORD,
    NewNpm,
    Npm,
    TarholdServer,
    TarholdStorage,
    http_json,
    index_js,
    installed_file,
    start_tarhold,
    unique_name,
    write_package,
)

pytestmark = pytest.mark.npm

# No catch-all: the config file is written with sorted keys, and `**` would
# sort (and so match) first. Nothing else is needed here.
RULES = {scope: {"access": "$authenticated", "publish": "$authenticated"} for scope in ("@acme/*", "@other/*")}


@dataclass(frozen=True)
class PrivateScopesStorage(TarholdStorage):
    """A storage whose servers start with RULES as their `packages:`."""

    def config(self, port: int) -> dict[str, Any]:
        return {**super().config(port), "packages": RULES}


@pytest.fixture(scope="module", params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TarholdServer]:
    backend = str(request.param)
    workdir = tmp_path_factory.mktemp(f"tarhold-grants-{backend}")
    plain = make_storage(backend, request, workdir / "storage")
    storage = PrivateScopesStorage(plain.backend, plain.directory, plain.store_section)
    server = start_tarhold(storage, workdir)
    try:
        yield server
    finally:
        server.stop()


def grant_token(server: TarholdServer, login: str, *grants: str) -> str:
    status, body = http_json(
        "POST", server.url + "-/npm/v1/tokens", {"password": PASSWORD, "grants": list(grants)}, token=login
    )
    assert status == 201, f"POST /-/npm/v1/tokens {grants}: {status} {body}"
    return str(body["token"])


def publish_dir(npm: Npm, name: str, version: str) -> Any:
    return write_package(npm.workdir(f"pkg-{name.strip('@').replace('/', '-')}-{version}"), name, version)


def test_grants_limit_what_npm_can_install_and_publish(registry: TarholdServer, new_npm: NewNpm) -> None:
    user = unique_name("alice")
    login = registry.add_user(user)
    acme, other = f"@acme/{unique_name('x')}", f"@other/{unique_name('y')}"
    reader = new_npm(registry, None, token=grant_token(registry, login, "pkg:read=@acme/*"))
    writer = new_npm(registry, None, token=grant_token(registry, login, "pkg:read+write=@acme/*"))
    full = new_npm(registry, None, token=login)

    writer.publish(publish_dir(writer, acme, "1.0.0"))
    refused = writer.fails("publish", cwd=publish_dir(writer, other, "1.0.0"))
    assert "E403" in refused.stderr and f"this token may not write {other}" in refused.stderr, refused.explain()
    full.publish(publish_dir(full, other, "1.0.0"))

    project = reader.install(f"{acme}@1.0.0")
    assert installed_file(project, acme) == index_js(acme, "1.0.0")
    denied = reader.fails("install", "--no-package-lock", other, cwd=reader.workdir("other"))
    assert "E403" in denied.stderr and f"this token may not read {other}" in denied.stderr, denied.explain()
    unpublishable = reader.fails("publish", cwd=publish_dir(reader, acme, "1.0.1"))
    assert "E403" in unpublishable.stderr and f"this token may not write {acme}" in unpublishable.stderr, (
        unpublishable.explain()
    )
    assert full.ok("view", acme, "versions", "--json").json() in ("1.0.0", ["1.0.0"])  # 1.0.1 never landed
