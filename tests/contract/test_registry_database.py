"""The RegistryDatabase contract, on every backend (SQLite, DynamoDB on moto and DynamoDB Local)."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest

from storage.base import Conflict, NotFound, RegistryDatabase
from tests.support.store_factory import RegistryDatabaseFactory

PK = "USER#ada"
SK = "PROFILE"


def set_page_size(db: RegistryDatabase, size: int) -> None:
    """Make the database page its queries by `size`, where it pages at all."""
    if hasattr(db, "page_size"):
        db.page_size = size  # type: ignore[attr-defined]


async def query(db: RegistryDatabase, pk: str, sk_prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    return [entry async for entry in db.query(pk, sk_prefix)]


# The registry's start-up step, as instances behind a load balancer all run it
# at once: whoever creates the secret first wins, the others adopt it.
async def ensure_secret(db: RegistryDatabase) -> str:
    try:
        return str((await db.get("CONFIG", "SECRET"))["secret"])
    except NotFound:
        pass
    secret = secrets.token_hex(32)
    try:
        await db.put("CONFIG", "SECRET", {"secret": secret}, if_absent=True)
        return secret
    except Conflict:
        return str((await db.get("CONFIG", "SECRET"))["secret"])


# -- items --------------------------------------------------------------------


async def test_getting_a_missing_item_is_not_found(registry_database: RegistryDatabase) -> None:
    with pytest.raises(NotFound):
        await registry_database.get(PK, SK)


async def test_item_round_trips_with_nested_values_and_unicode(
    registry_database: RegistryDatabase,
) -> None:
    item = {
        "name": "Ada Lovelace — 日本語 ☕ 🚀",
        "email": "ada@example.com",
        "scopes": ["pkg:read", {"deep": {"deeper": [1, 2.5, None, True, False, ""]}}],
        "empty_list": [],
        "empty_map": {},
        "count": 0,
        "big": 2**53,
        "ratio": 0.125,
        "none": None,
    }
    ver = await registry_database.put(PK, SK, item)
    assert ver == 1
    assert await registry_database.get(PK, SK) == {**item, "ver": 1}


async def test_ver_starts_at_one_and_grows_by_one_on_each_write(
    registry_database: RegistryDatabase,
) -> None:
    assert await registry_database.put(PK, SK, {"n": 1}) == 1
    assert await registry_database.put(PK, SK, {"n": 2}) == 2
    assert await registry_database.put(PK, SK, {"n": 3}, if_ver=2) == 3
    assert await registry_database.get(PK, SK) == {"n": 3, "ver": 3}


async def test_creating_an_item_twice_conflicts(registry_database: RegistryDatabase) -> None:
    assert await registry_database.put(PK, SK, {"n": 1}, if_absent=True) == 1
    with pytest.raises(Conflict):
        await registry_database.put(PK, SK, {"n": 2}, if_absent=True)
    assert await registry_database.get(PK, SK) == {"n": 1, "ver": 1}


async def test_writing_with_a_stale_ver_conflicts(registry_database: RegistryDatabase) -> None:
    await registry_database.put(PK, SK, {"n": 1})
    await registry_database.put(PK, SK, {"n": 2}, if_ver=1)
    with pytest.raises(Conflict):
        await registry_database.put(PK, SK, {"n": 3}, if_ver=1)
    assert await registry_database.get(PK, SK) == {"n": 2, "ver": 2}


async def test_writing_with_a_ver_to_a_missing_item_conflicts(
    registry_database: RegistryDatabase,
) -> None:
    with pytest.raises(Conflict):
        await registry_database.put(PK, SK, {"n": 1}, if_ver=1)
    with pytest.raises(NotFound):
        await registry_database.get(PK, SK)


async def test_two_writers_with_the_same_ver_exactly_one_wins(
    registry_database_factory: RegistryDatabaseFactory,
) -> None:
    first, second = await registry_database_factory(), await registry_database_factory()
    await first.put(PK, SK, {"by": "nobody"})
    for round_ in range(3):
        ver = (await first.get(PK, SK))["ver"]
        results = await asyncio.gather(
            first.put(PK, SK, {"by": "first", "round": round_}, if_ver=ver),
            second.put(PK, SK, {"by": "second", "round": round_}, if_ver=ver),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, int)]
        losers = [r for r in results if isinstance(r, Conflict)]
        assert winners == [ver + 1] and len(losers) == 1, results
        expected = "first" if isinstance(results[0], int) else "second"
        assert await second.get(PK, SK) == {"by": expected, "round": round_, "ver": ver + 1}


async def test_racing_unconditional_writes_each_get_their_own_ver(
    registry_database_factory: RegistryDatabaseFactory,
) -> None:
    # The package list's change log numbers changes by this: a counter item's `ver`.
    first, second = await registry_database_factory(), await registry_database_factory()
    vers = await asyncio.gather(*(
        (first if n % 2 else second).put("CONFIG", "COUNTER", {"n": n}) for n in range(40)
    ))
    assert sorted(vers) == list(range(1, 41))


async def test_racing_instances_agree_on_one_secret(
    registry_database_factory: RegistryDatabaseFactory,
) -> None:
    first, second = await registry_database_factory(), await registry_database_factory()
    one, other = await asyncio.gather(ensure_secret(first), ensure_secret(second))
    assert one == other
    assert (await first.get("CONFIG", "SECRET"))["secret"] == one
    # A later start adopts it.
    assert await ensure_secret(await registry_database_factory()) == one


# -- delete -------------------------------------------------------------------


async def test_deleted_item_is_not_found(registry_database: RegistryDatabase) -> None:
    await registry_database.put(PK, SK, {"n": 1})
    await registry_database.delete(PK, SK)
    with pytest.raises(NotFound):
        await registry_database.get(PK, SK)


async def test_deleting_a_missing_item_is_not_found(registry_database: RegistryDatabase) -> None:
    with pytest.raises(NotFound):
        await registry_database.delete(PK, SK)


async def test_deleting_with_a_stale_ver_conflicts_and_keeps_the_item(
    registry_database: RegistryDatabase,
) -> None:
    await registry_database.put(PK, SK, {"n": 1})
    await registry_database.put(PK, SK, {"n": 2})
    with pytest.raises(Conflict):
        await registry_database.delete(PK, SK, if_ver=1)
    assert await registry_database.get(PK, SK) == {"n": 2, "ver": 2}
    await registry_database.delete(PK, SK, if_ver=2)
    with pytest.raises(NotFound):
        await registry_database.get(PK, SK)


async def test_item_recreated_after_delete_starts_at_ver_one(
    registry_database: RegistryDatabase,
) -> None:
    await registry_database.put(PK, SK, {"n": 1})
    await registry_database.put(PK, SK, {"n": 2})
    await registry_database.delete(PK, SK)
    assert await registry_database.put(PK, SK, {"n": 3}, if_absent=True) == 1


# -- expiry -------------------------------------------------------------------


async def test_expired_item_reads_as_not_found_and_counts_as_absent(
    registry_database: RegistryDatabase,
) -> None:
    past = int(time.time()) - 60
    await registry_database.put(PK, SK, {"n": 1}, expires=past)

    with pytest.raises(NotFound):
        await registry_database.get(PK, SK)
    with pytest.raises(NotFound):
        await registry_database.delete(PK, SK)
    with pytest.raises(Conflict):
        await registry_database.put(PK, SK, {"n": 2}, if_ver=1)

    assert await registry_database.put(PK, SK, {"n": 3}, if_absent=True) == 1
    assert await registry_database.get(PK, SK) == {"n": 3, "ver": 1}


async def test_item_that_expires_later_is_served(registry_database: RegistryDatabase) -> None:
    await registry_database.put(PK, SK, {"n": 1}, expires=int(time.time()) + 3600)
    assert (await registry_database.get(PK, SK))["n"] == 1
    with pytest.raises(Conflict):
        await registry_database.put(PK, SK, {"n": 2}, if_absent=True)


# -- query --------------------------------------------------------------------


async def test_get_many_returns_the_live_items_it_finds_by_sk(registry_database: RegistryDatabase) -> None:
    await registry_database.put("PACKAGE", "a", {"n": 1})
    await registry_database.put("PACKAGE", "b", {"n": 2})
    await registry_database.put("PACKAGE", "b", {"n": 3})
    await registry_database.put("PACKAGE", "old", {"n": 4}, expires=int(time.time()) - 10)
    await registry_database.put("OTHER", "c", {"n": 5})
    found = await registry_database.get_many("PACKAGE", ["b", "missing", "a", "old", "c", "a"])
    assert found == {"a": {"n": 1, "ver": 1}, "b": {"n": 3, "ver": 2}}
    assert await registry_database.get_many("PACKAGE", []) == {}


async def test_get_many_reads_more_keys_than_one_batch_holds(registry_database: RegistryDatabase) -> None:
    names = [f"p{n:04d}" for n in range(620)]  # past DynamoDB's 100 and SQLite's 500 a statement
    await asyncio.gather(*(registry_database.put("PACKAGE", name, {"name": name}) for name in names[::2]))
    found = await registry_database.get_many("PACKAGE", names)
    assert sorted(found) == names[::2] and all(found[name]["name"] == name for name in found)


async def test_query_returns_items_under_the_prefix_in_sk_order(
    registry_database: RegistryDatabase,
) -> None:
    for sk in ["tok#c", "tok#a", "other", "tok#b", "tok", "tol#a"]:
        await registry_database.put("TOKEN#ada", sk, {"sk": sk})
    await registry_database.put("TOKEN#bob", "tok#a", {"sk": "bob's"})

    found = await query(registry_database, "TOKEN#ada", "tok#")

    assert [sk for sk, _ in found] == ["tok#a", "tok#b", "tok#c"]
    assert [item for _, item in found] == [{"sk": sk, "ver": 1} for sk in ["tok#a", "tok#b", "tok#c"]]


async def test_query_without_prefix_returns_the_whole_partition_only(
    registry_database: RegistryDatabase,
) -> None:
    for sk in ["b", "a", "c"]:
        await registry_database.put("PACKAGE", sk, {"name": sk})
    await registry_database.put("PACKAGES", "a", {"name": "elsewhere"})
    assert [sk for sk, _ in await query(registry_database, "PACKAGE")] == ["a", "b", "c"]


async def test_query_prefix_is_literal(registry_database: RegistryDatabase) -> None:
    for sk in ["a%b", "axb", "a_c", "abc", "A%b"]:
        await registry_database.put("P", sk, {})
    assert [sk for sk, _ in await query(registry_database, "P", "a%")] == ["a%b"]
    assert [sk for sk, _ in await query(registry_database, "P", "a_")] == ["a_c"]


async def test_query_follows_every_page(registry_database: RegistryDatabase) -> None:
    set_page_size(registry_database, 2)
    wanted = [f"pkg#{i:02d}" for i in range(7)]
    for sk in [*reversed(wanted), "aaa", "zzz"]:
        await registry_database.put("PACKAGE", sk, {"sk": sk})

    found = await query(registry_database, "PACKAGE", "pkg#")

    assert [sk for sk, _ in found] == wanted
    assert [item["sk"] for _, item in found] == wanted


async def test_query_skips_expired_items(registry_database: RegistryDatabase) -> None:
    now = int(time.time())
    await registry_database.put("TOKENHASH", "a", {}, expires=now - 60)
    await registry_database.put("TOKENHASH", "b", {}, expires=now + 3600)
    await registry_database.put("TOKENHASH", "c", {})
    assert [sk for sk, _ in await query(registry_database, "TOKENHASH")] == ["b", "c"]


async def test_query_on_an_empty_partition_is_empty(registry_database: RegistryDatabase) -> None:
    await registry_database.put("PACKAGE", "left-pad", {})
    assert await query(registry_database, "USER#nobody") == []
    assert await query(registry_database, "PACKAGE", "right-") == []


# -- health -------------------------------------------------------------------


async def test_check_health_passes_on_a_working_database(
    registry_database: RegistryDatabase,
) -> None:
    await registry_database.check_health()
