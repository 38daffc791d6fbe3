"""Granular tokens over HTTP: the grant matrix, and the grant checks around it.

The matrix: every grant type (pkg, user) × level (read, read+write) × value
form (`*`, a package name, `@scope/*`, `~user`) × operation, with the
cross-type and glob-boundary cases. Each row is a token created through
`POST /-/npm/v1/tokens` with `grants`; each cell is one request with it.
One test per backend walks the whole table and reports every cell that
differs at once, naming the row; the observed table is written as markdown
to MATRIX_FILE for the release notes.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry.domain.users import create_token as db_create_token
from registry.http.appkeys import DATABASE

from .conftest import MakeClient
from .packages import path_of, publish, tarball_name
from .users import PASSWORD, add_user, bearer

MATRIX_FILE = Path("/tmp/tarhold-grant-matrix.md")

PRIVATE = {"access": "$authenticated", "publish": "$authenticated"}
RULES = {
    "@bobs/*": {"access": "$authenticated", "publish": "bob"},
    "public-*": {"access": "$all", "publish": "$authenticated"},
    "**": PRIVATE,
}
TARGETS = ("@acme/ui", "@acme/other", "@acmex/ui", "acme", "@bobs/lib", "public-pad")

PKG_READ = ("read packument", "read tarball")
PKG_WRITE = ("publish", "unpublish", "dist-tag", "deprecate", "owner change")
USER_READ = ("whoami", "profile get", "token list")
USER_WRITE = ("profile set", "token create", "token revoke")
OPERATIONS = PKG_READ + PKG_WRITE + USER_READ + USER_WRITE
ALL = frozenset(OPERATIONS)
NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Row:
    """A token (its grants; None: full rights) used on `target`, and what it may do."""

    grants: tuple[str, ...] | None
    target: str
    allowed: frozenset[str]
    readonly: bool = False
    created: int = 201  # 400: the grants are refused at creation

    @property
    def label(self) -> str:
        grants = ", ".join(self.grants) if self.grants is not None else "(none: full rights)"
        return grants + (" + read-only" if self.readonly else "")


def ops(*groups: tuple[str, ...]) -> frozenset[str]:
    return frozenset(itertools.chain.from_iterable(groups))


MATRIX = [
    Row(None, "@acme/ui", ALL),
    Row(None, "@acme/ui", ops(PKG_READ, USER_READ), readonly=True),
    Row(("pkg:read=*",), "@acme/ui", ops(PKG_READ)),
    Row(("pkg:read+write=*",), "@acme/ui", ops(PKG_READ, PKG_WRITE)),
    Row(("pkg:read=@acme/ui",), "@acme/ui", ops(PKG_READ)),
    Row(("pkg:read+write=@acme/ui",), "@acme/ui", ops(PKG_READ, PKG_WRITE)),
    Row(("pkg:read+write=@acme/ui",), "@acme/other", NONE),
    Row(("pkg:read=@acme/*",), "@acme/ui", ops(PKG_READ)),
    Row(("pkg:read+write=@acme/*",), "@acme/ui", ops(PKG_READ, PKG_WRITE)),
    Row(("pkg:read+write=@acme/*",), "@acme/other", ops(PKG_READ, PKG_WRITE)),
    Row(("pkg:read+write=@acme/*",), "@acmex/ui", NONE),
    Row(("pkg:read+write=@acme/*",), "acme", NONE),
    Row(("pkg:read+write=acme",), "acme", ops(PKG_READ, PKG_WRITE)),
    Row(("pkg:read+write=acme",), "@acme/ui", NONE),
    Row(("pkg:read+write=@acme/*",), "@acme/ui", ops(PKG_READ), readonly=True),
    # A grant never exceeds the user: bob alone may publish @bobs/*.
    Row(("pkg:read+write=*",), "@bobs/lib", ops(PKG_READ)),
    # Nor takes away what an anonymous request gets: public-* is access $all.
    Row(("user:read=~alice",), "public-pad", ops(PKG_READ, USER_READ)),
    Row(("user:read=~alice",), "@acme/ui", ops(USER_READ)),
    Row(("user:read+write=~alice",), "@acme/ui", ops(USER_READ, USER_WRITE)),
    Row(("user:read=*",), "@acme/ui", ops(USER_READ)),
    Row(("user:read+write=*",), "@acme/ui", ops(USER_READ, USER_WRITE)),
    Row(("user:read+write=~bob",), "@acme/ui", NONE),
    Row(("pkg:read+write=@acme/*", "user:read=~alice"), "@acme/ui", ops(PKG_READ, PKG_WRITE, USER_READ)),
    Row(("pkg:read=~alice",), "@acme/ui", NONE, created=400),
    Row(("user:read=@acme/*",), "@acme/ui", NONE, created=400),
    Row(("user:read+write=alice",), "@acme/ui", NONE, created=400),
    Row(("pkg:read+write=@acme",), "@acme/ui", NONE, created=400),
]


@dataclass
class World:
    """One registry with alice and bob, and every target package at 1.0.0."""

    client: TestClient
    tokens: dict[str, str]  # user → full-rights login token
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def owner(self, target: str) -> str:
        return self.tokens["bob" if target.startswith("@bobs/") else "alice"]

    def next(self) -> int:
        return next(self.counter)

    async def write_doc(self, target: str) -> dict[str, Any]:
        response = await self.client.get(f"{path_of(target)}?write=true", headers=bearer(self.owner(target)))
        assert response.status == 200, await response.text()
        return dict(await response.json())


Operation = Callable[[World, str, str], Awaitable[int]]


async def status_of(response: Any) -> int:
    await response.read()
    return int(response.status)


async def read_packument(world: World, token: str, target: str) -> int:
    return await status_of(await world.client.get(path_of(target), headers=bearer(token)))


async def read_tarball(world: World, token: str, target: str) -> int:
    path = f"{path_of(target)}/-/{tarball_name(target, '1.0.0')}"
    return await status_of(await world.client.get(path, headers=bearer(token)))


async def do_publish(world: World, token: str, target: str) -> int:
    return await publish(world.client, token, target, f"2.0.{world.next()}")


async def unpublish(world: World, token: str, target: str) -> int:
    version, tag = f"3.0.{world.next()}", f"tmp{world.next()}"
    assert await publish(world.client, world.owner(target), target, version, tag=tag) == 201
    doc = await world.write_doc(target)
    del doc["versions"][version]
    del doc["dist-tags"][tag]
    return await put_doc(world, token, target, doc)


async def dist_tag(world: World, token: str, target: str) -> int:
    path = f"/-/package{path_of(target)}/dist-tags/t{world.next()}"
    return await status_of(await world.client.put(path, json="1.0.0", headers=bearer(token)))


async def deprecate(world: World, token: str, target: str) -> int:
    doc = await world.write_doc(target)
    doc["versions"]["1.0.0"]["deprecated"] = f"deprecated #{world.next()}"
    return await put_doc(world, token, target, doc)


async def owner_change(world: World, token: str, target: str) -> int:
    doc = await world.write_doc(target)
    maintainers = [m for m in doc["maintainers"] if m["name"] != "carol"]
    body = {"_id": target, "_rev": doc["_rev"], "maintainers": [*maintainers, {"name": "carol", "email": "c@example.com"}]}
    return await put_doc(world, token, target, body)


async def put_doc(world: World, token: str, target: str, doc: dict[str, Any]) -> int:
    path = f"{path_of(target)}/-rev/{doc['_rev']}"
    return await status_of(await world.client.put(path, json=doc, headers=bearer(token)))


async def whoami(world: World, token: str, target: str) -> int:
    return await status_of(await world.client.get("/-/whoami", headers=bearer(token)))


async def profile_get(world: World, token: str, target: str) -> int:
    return await status_of(await world.client.get("/-/npm/v1/user", headers=bearer(token)))


async def profile_set(world: World, token: str, target: str) -> int:
    body = {"fullname": f"Alice #{world.next()}"}
    return await status_of(await world.client.post("/-/npm/v1/user", json=body, headers=bearer(token)))


async def token_list(world: World, token: str, target: str) -> int:
    return await status_of(await world.client.get("/-/npm/v1/tokens", headers=bearer(token)))


async def token_create(world: World, token: str, target: str) -> int:
    body = {"password": PASSWORD}  # no grants: the new token inherits the creator's
    return await status_of(await world.client.post("/-/npm/v1/tokens", json=body, headers=bearer(token)))


async def token_revoke(world: World, token: str, target: str) -> int:
    _, victim = await db_create_token(world.client.server.app[DATABASE], "alice", name="victim")
    path = f"/-/npm/v1/tokens/token/{victim['key']}"
    return await status_of(await world.client.delete(path, headers=bearer(token)))


RUN: dict[str, Operation] = {
    "read packument": read_packument, "read tarball": read_tarball, "publish": do_publish,
    "unpublish": unpublish, "dist-tag": dist_tag, "deprecate": deprecate,
    "owner change": owner_change, "whoami": whoami, "profile get": profile_get,
    "profile set": profile_set, "token list": token_list, "token create": token_create,
    "token revoke": token_revoke,
}
assert set(RUN) == ALL


async def setup_world(make_client: MakeClient) -> World:
    client = await make_client(packages=RULES)
    world = World(client, {name: await add_user(client, name) for name in ("alice", "bob", "carol")})
    for target in TARGETS:
        assert await publish(client, world.owner(target), target, "1.0.0") == 201, target
    return world


async def row_token(world: World, row: Row) -> tuple[int, str]:
    body: dict[str, Any] = {"password": PASSWORD, "readonly": row.readonly}
    if row.grants is not None:
        body["grants"] = list(row.grants)
    response = await world.client.post("/-/npm/v1/tokens", json=body, headers=bearer(world.tokens["alice"]))
    answer = await response.json()
    return response.status, str(answer.get("token", answer.get("error")))


def cell(status: int | None, expected_ok: bool | None) -> str:
    if status is None:
        return "—"
    ok = 200 <= status < 300
    mark = f"✅ {status}" if ok else f"❌ {status}"
    if expected_ok is not None and ok != expected_ok:
        mark += " **(expected " + ("2xx" if expected_ok else "403") + ")**"
    return mark


def write_markdown(results: list[tuple[Row, int, dict[str, int]]]) -> None:
    header = ["grants", "package", "create", *OPERATIONS]
    lines = [
        "Grant matrix, observed over HTTP (✅ allowed, ❌ refused; the number is the status).",
        "Package operations act on the `package` column; user operations on the token's own user, alice.",
        "Rules: `@bobs/*` publish: bob only; `public-*` access: $all; everything else access and publish: $authenticated.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row, created, statuses in results:
        cells = [f"`{row.label}`", f"`{row.target}`", str(created)]
        cells += [cell(statuses.get(op), (op in row.allowed) if statuses else None) for op in OPERATIONS]
        lines.append("| " + " | ".join(cells) + " |")
    MATRIX_FILE.write_text("\n".join(lines) + "\n")


async def test_the_grant_matrix(make_client: MakeClient) -> None:
    world = await setup_world(make_client)
    mismatches: list[str] = []
    results: list[tuple[Row, int, dict[str, int]]] = []
    for row in MATRIX:
        created, token = await row_token(world, row)
        statuses: dict[str, int] = {}
        results.append((row, created, statuses))
        if created != row.created:
            mismatches.append(f"[{row.label}] token create: {created} ({token}), expected {row.created}")
        if created != 201:
            continue
        for op in OPERATIONS:
            status = statuses[op] = await RUN[op](world, token, row.target)
            wanted = "2xx" if op in row.allowed else "403"
            if (200 <= status < 300) != (op in row.allowed) or (op not in row.allowed and status != 403):
                mismatches.append(f"[{row.label} on {row.target}] {op}: {status}, expected {wanted}")
    write_markdown(results)
    assert not mismatches, f"{len(mismatches)} cells differ (table in {MATRIX_FILE}):\n" + "\n".join(mismatches)


# -- around the matrix --------------------------------------------------------------


@pytest.fixture
async def acme(make_client: MakeClient) -> World:
    """A registry with alice's @acme/ui, @other/y (private) and public-pad (access $all)."""
    client = await make_client(packages=RULES)
    world = World(client, {"alice": await add_user(client, "alice")})
    for name in ("@acme/ui", "@other/y", "public-pad"):
        assert await publish(client, world.tokens["alice"], name, "1.0.0", keywords=["shared"]) == 201
    return world


async def grant_token(world: World, *grants: str, using: str | None = None) -> dict[str, Any]:
    token = using or world.tokens["alice"]
    body = {"password": PASSWORD, "grants": list(grants)}
    response = await world.client.post("/-/npm/v1/tokens", json=body, headers=bearer(token))
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def error_of(response: Any) -> str:
    return str((await response.json())["error"])


async def test_search_shows_only_what_the_token_may_read(acme: World) -> None:
    token = (await grant_token(acme, "pkg:read=@acme/*"))["token"]

    async def names(headers: dict[str, str]) -> list[str]:
        body = await (await acme.client.get("/-/v1/search?text=shared", headers=headers)).json()
        return sorted(o["package"]["name"] for o in body["objects"])

    assert await names(bearer(acme.tokens["alice"])) == ["@acme/ui", "@other/y", "public-pad"]
    assert await names(bearer(token)) == ["@acme/ui", "public-pad"]
    assert await names({}) == ["public-pad"]


async def test_manifest_and_dist_tags_reads_need_a_read_grant(acme: World) -> None:
    token = (await grant_token(acme, "pkg:read=@acme/*"))["token"]
    client = acme.client
    assert (await client.get("/@acme%2fui/1.0.0", headers=bearer(token))).status == 200
    refused = await client.get("/@other%2fy/latest", headers=bearer(token))
    assert refused.status == 403
    assert await error_of(refused) == "this token may not read @other/y: it has no pkg:read grant that covers it"
    assert (await client.get("/-/package/@acme%2fui/dist-tags", headers=bearer(token))).status == 200
    assert (await client.get("/-/package/@other%2fy/dist-tags", headers=bearer(token))).status == 403


async def test_star_needs_a_write_grant(acme: World) -> None:
    reader = (await grant_token(acme, "pkg:read=*"))["token"]
    writer = (await grant_token(acme, "pkg:read+write=@acme/ui"))["token"]
    body = {"_id": "@acme/ui", "users": {"alice": True}}
    assert (await acme.client.put("/@acme%2fui", json=body, headers=bearer(reader))).status == 403
    assert (await acme.client.put("/@acme%2fui", json=body, headers=bearer(writer))).status == 201


async def test_a_token_cannot_create_a_token_with_more_than_it_holds(acme: World) -> None:
    creator = (await grant_token(acme, "pkg:read+write=@acme/*", "user:read+write=~alice"))["token"]
    for wanted in (["pkg:read=*"], ["pkg:read+write=@acmex/*"], ["user:read=*"], ["pkg:read=@acme/*", "user:read=~bob"]):
        body = {"password": PASSWORD, "grants": wanted}
        response = await acme.client.post("/-/npm/v1/tokens", json=body, headers=bearer(creator))
        assert response.status == 403, wanted
        assert "its own grants do not cover it" in await error_of(response)
    narrower = await grant_token(acme, "pkg:read=@acme/ui", "user:read=~alice", using=creator)
    assert narrower["grants"] == ["pkg:read=@acme/ui", "user:read=~alice"]
    inherited = await acme.client.post("/-/npm/v1/tokens", json={"password": PASSWORD}, headers=bearer(creator))
    assert (await inherited.json())["grants"] == ["pkg:read+write=@acme/*", "user:read+write=~alice"]


@pytest.mark.parametrize(
    ("grants", "message"),
    [
        (["pkg:write=*"], "invalid grant 'pkg:write=*'"),
        (["pkg:read=~alice"], "a pkg grant names *, a package, or @scope/*"),
        (["user:read=@acme/*"], "a user grant names * or ~username"),
        ([], "at least one grant"),
        ("pkg:read=*", "grants must be a list"),
        ([1], "grants must be a list"),
    ],
)
async def test_bad_grants_are_400_with_the_reason(acme: World, grants: Any, message: str) -> None:
    body = {"password": PASSWORD, "grants": grants}
    response = await acme.client.post("/-/npm/v1/tokens", json=body, headers=bearer(acme.tokens["alice"]))
    assert response.status == 400
    assert message in await error_of(response)


async def test_token_list_shows_grants_and_expiry(acme: World) -> None:
    body = {"password": PASSWORD, "grants": ["pkg:read=@acme/*"], "expires": 30}
    response = await acme.client.post("/-/npm/v1/tokens", json=body, headers=bearer(acme.tokens["alice"]))
    key = (await response.json())["key"]
    listing = await (await acme.client.get("/-/npm/v1/tokens", headers=bearer(acme.tokens["alice"]))).json()
    listed = next(t for t in listing["objects"] if t["key"] == key)
    assert listed["grants"] == ["pkg:read=@acme/*"]
    assert listed["expires"].endswith("Z") and listed["expired"] is False
    login = next(t for t in listing["objects"] if t["key"] != key)
    assert login["grants"] is None and login["expires"] is None


async def test_user_documents_need_a_user_read_grant(acme: World) -> None:
    await add_user(acme.client, "bob")
    packages_only = (await grant_token(acme, "pkg:read+write=*"))["token"]
    reads_bob = (await grant_token(acme, "user:read=~bob"))["token"]
    path = "/-/user/org.couchdb.user:bob"
    assert (await acme.client.get(path, headers=bearer(packages_only))).status == 403
    assert (await acme.client.get(path, headers=bearer(reads_bob))).status == 200


async def test_any_token_may_log_itself_out(acme: World) -> None:
    token = (await grant_token(acme, "pkg:read=@acme/*"))["token"]
    assert (await acme.client.delete(f"/-/user/token/{token}", headers=bearer(token))).status == 200
    assert (await acme.client.get("/@acme%2fui", headers=bearer(token))).status == 401
