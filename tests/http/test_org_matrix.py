"""The organization grant matrix over HTTP, on every backend.

The org `acme` has two teams, `readers` (read-only on @acme/private) and
`writers` (read-write on @acme/private and @acme/public), and three
packages: @acme/private (private), @acme/public and @acme/spare (public).
Each principal — anonymous, an outside user, a member with no grant, a
readers member, a writers member, an org admin, the owner — tries each
operation on each package; the expected status of every cell is written
below. Writes that succeed leave the package usable for the next cell.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.domain.org_store import (
    add_team_member,
    create_org,
    create_team,
    grant,
    revoke,
    set_member,
)
from registry.http.appkeys import DATABASE
from registry.http.org_directory import reload

from .conftest import MakeClient
from .packages import path_of, publish_body, tarball_name
from .users import add_user, bearer

OPERATIONS = ("read", "install", "publish", "dist-tag", "deprecate", "unpublish", "owner add")
PRINCIPALS = ("anonymous", "outsider", "member", "reader", "writer", "admin", "owner")
OK = (200, 200, 201, 201, 201, 201, 201)
HIDDEN = (404,) * 7
ANONYMOUS = (404, 404, 401, 401, 401, 401, 401)
READ_ONLY = (200, 200, 403, 403, 403, 403, 403)
EXPECTED: dict[str, dict[str, tuple[int, ...]]] = {
    "@acme/private": {
        # An outsider's publish hears "not a member", as for a name that does not exist.
        "anonymous": ANONYMOUS, "outsider": (404, 404, 403, 404, 404, 404, 404), "member": HIDDEN, "reader": READ_ONLY,
        "writer": OK, "admin": READ_ONLY, "owner": OK,
    },
    "@acme/public": {
        "anonymous": (200, 200, 401, 401, 401, 401, 401), "outsider": READ_ONLY, "member": READ_ONLY,
        "reader": READ_ONLY, "writer": OK, "admin": READ_ONLY, "owner": OK,
    },
    "@acme/spare": {
        "anonymous": (200, 200, 401, 401, 401, 401, 401), "outsider": READ_ONLY, "member": READ_ONLY,
        "reader": READ_ONLY, "writer": READ_ONLY, "admin": READ_ONLY, "owner": OK,
    },
}
Operation = Callable[[TestClient, str, dict[str, str], int], Awaitable[int]]


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client(packages={"@acme/*": {"access": "$all", "publish": "$authenticated"},
                                       "**": {"access": "$all", "publish": "$authenticated"}})


async def status_of(response: Any) -> int:
    await response.read()
    return int(response.status)


async def document(client: TestClient, name: str) -> dict[str, Any]:
    response = await client.get(path_of(name) + "?write=true", headers={"Authorization": OWNER_AUTH[0]})
    assert response.status == 200, await response.text()
    return dict(await response.json())


OWNER_AUTH: list[str] = []


async def read(client: TestClient, name: str, auth: dict[str, str], n: int) -> int:
    return await status_of(await client.get(path_of(name), headers=auth))


async def install(client: TestClient, name: str, auth: dict[str, str], n: int) -> int:
    return await status_of(await client.get(f"{path_of(name)}/-/{tarball_name(name, '1.0.0')}", headers=auth))


async def publish_one(client: TestClient, name: str, auth: dict[str, str], n: int) -> int:
    body = publish_body(name, f"2.0.{n}")
    return await status_of(await client.put(path_of(name), json=body, headers=auth))


async def dist_tag(client: TestClient, name: str, auth: dict[str, str], n: int) -> int:
    url = "/-/package/" + path_of(name)[1:] + f"/dist-tags/t{n}"
    return await status_of(await client.put(url, json="1.0.0", headers=auth))


async def deprecate(client: TestClient, name: str, auth: dict[str, str], n: int) -> int:
    doc = await document(client, name)
    doc["versions"]["1.0.0"]["deprecated"] = f"use 2 ({n})"
    return await status_of(await client.put(f"{path_of(name)}/-rev/{doc['_rev']}", json=doc, headers=auth))


async def unpublish(client: TestClient, name: str, auth: dict[str, str], n: int) -> int:
    version = f"9.0.{n}"  # a version the owner publishes for this cell to take away
    assert await status_of(await client.put(path_of(name), json=publish_body(name, version),
                                             headers={"Authorization": OWNER_AUTH[0]})) == 201
    doc = await document(client, name)
    del doc["versions"][version]
    return await status_of(await client.put(f"{path_of(name)}/-rev/{doc['_rev']}", json=doc, headers=auth))


async def owner_add(client: TestClient, name: str, auth: dict[str, str], n: int) -> int:
    doc = await document(client, name)
    doc["maintainers"] = [*doc["maintainers"], {"name": "outsider", "email": "outsider@example.com"}]
    return await status_of(await client.put(f"{path_of(name)}/-rev/{doc['_rev']}", json=doc, headers=auth))


RUN: dict[str, Operation] = {
    "read": read, "install": install, "publish": publish_one, "dist-tag": dist_tag,
    "deprecate": deprecate, "unpublish": unpublish, "owner add": owner_add,
}


async def make_org(client: TestClient) -> dict[str, dict[str, str]]:
    """The org, its teams and packages; each principal's Authorization header."""
    tokens = {p: await add_user(client, p) for p in PRINCIPALS if p != "anonymous"}
    auth = {p: bearer(t) for p, t in tokens.items()} | {"anonymous": {}}
    OWNER_AUTH[:] = [auth["owner"]["Authorization"]]
    db = client.server.app[DATABASE]
    org = await create_org(db, "acme", "owner")
    for user, role in (("member", "developer"), ("reader", "developer"), ("writer", "developer"), ("admin", "admin")):
        org = await set_member(db, org, user, role)
    await reload(client.server.app)
    for name, access in (("@acme/private", "restricted"), ("@acme/public", "public"), ("@acme/spare", "public")):
        body = {**publish_body(name, "1.0.0"), "access": access}
        assert await status_of(await client.put(path_of(name), json=body, headers=auth["owner"])) == 201
    org = (await reload(client.server.app)).orgs["acme"]
    for name in EXPECTED:  # members get write on what they create through `developers`: not here
        await revoke(db, org, "developers", name)
    for team in ("readers", "writers"):
        await create_team(db, org, team)
    org = (await reload(client.server.app)).orgs["acme"]
    for team in ("readers", "writers"):
        await add_team_member(db, org, team, team[:-1])
    await grant(db, org, "readers", "@acme/private", "read")
    await grant(db, org, "writers", "@acme/private", "write")
    await grant(db, org, "writers", "@acme/public", "write")
    await reload(client.server.app)
    return auth


async def test_every_principal_and_operation_on_every_package(client: TestClient) -> None:
    auth = await make_org(client)
    wrong = []
    n = 0
    for name, rows in EXPECTED.items():
        for principal, expected in rows.items():
            for operation, want in zip(OPERATIONS, expected, strict=True):
                n += 1
                got = await RUN[operation](client, name, auth[principal], n)
                if got != want:
                    wrong.append(f"{name} {principal} {operation}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)
