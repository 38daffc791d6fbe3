"""The package list kept current on every instance through its change log, on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from registry.domain import package_list
from registry.domain.package_list import LOG_PK, SEQ_PK, SEQ_SK, PackageList, log_key
from storage.base import RegistryDatabase
from tests.support.store_factory import RegistryDatabaseFactory


class SeesAll:
    def rule(self, index: int) -> bool | None:
        return True

    def org_scopes(self) -> Iterable[str]:
        return ()

    def name(self, name: str) -> bool:
        return True


def found(listing: PackageList, word: str) -> list[str]:
    return [name for _, name in listing.search([word], None, SeesAll()).take(1000)]


def entry(description: str, **more: object) -> dict[str, object]:
    return {"local": True, "version": "1.0.0", "description": description, **more}


async def instances(factory: RegistryDatabaseFactory, count: int = 2) -> list[PackageList]:
    made = [PackageList(await factory(), lambda name: 0) for _ in range(count)]
    for listing in made:
        await listing.load()
    return made


async def test_a_change_on_one_instance_is_found_on_another_after_a_refresh(
    registry_database_factory: RegistryDatabaseFactory,
) -> None:
    one, two = await instances(registry_database_factory)
    await one.record("left-pad", entry("pads strings on the left"))
    assert found(one, "pads") == ["left-pad"]  # at once where it was made
    assert found(two, "pads") == []
    await two.refresh()
    assert found(two, "pads") == ["left-pad"]
    assert [e["description"] for e in await two.entries(["left-pad"])] == ["pads strings on the left"]
    await one.record("left-pad", entry("now pads on the right"))
    await one.record("gone", entry("pads nothing"))
    await one.record("gone", None)
    await two.refresh()
    assert found(two, "pads") == ["left-pad"] and found(two, "right") == ["left-pad"]
    assert [e["description"] for e in await two.entries(["left-pad", "gone"])] == ["now pads on the right"]


async def test_an_instance_started_later_reads_the_whole_list(
    registry_database_factory: RegistryDatabaseFactory,
) -> None:
    (one,) = await instances(registry_database_factory, 1)
    for number in range(30):
        await one.record(f"pkg-{number:02d}", entry("bench"))
    (late,) = await instances(registry_database_factory, 1)
    assert found(late, "bench") == [f"pkg-{n:02d}" for n in range(30)]
    assert late.seen == await late.head() == 30


async def test_concurrent_changes_from_two_instances_are_all_logged_and_found(
    registry_database_factory: RegistryDatabaseFactory,
) -> None:
    one, two, three = await instances(registry_database_factory, 3)
    await asyncio.gather(*(
        (one if number % 2 else two).record(f"pkg-{number:03d}", entry("racing")) for number in range(120)
    ))
    await three.refresh()  # 120 changes: two blocks of the log and part of a third
    assert found(three, "racing") == [f"pkg-{n:03d}" for n in range(120)]
    assert three.seen == 120


async def test_a_change_whose_log_item_never_appears_makes_the_instance_read_the_whole_list(
    registry_database_factory: RegistryDatabaseFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    one, two = await instances(registry_database_factory)
    db: RegistryDatabase = one.db
    # A writer that died between the counter and the log: the list holds its entry, no log item names it.
    await db.put("PACKAGE", "orphan", entry("lost change"))
    await db.put(SEQ_PK, SEQ_SK, {"name": "orphan"})
    await one.record("after", entry("later change"))
    await two.refresh()
    assert found(two, "later") == ["after"]  # what follows the gap is applied already
    assert found(two, "lost") == [] and two.seen == 0  # the gap is waited for
    monkeypatch.setattr(package_list, "GAP_PATIENCE", 0.0)
    await two.refresh()
    assert found(two, "lost") == ["orphan"] and two.seen == 2


async def test_an_instance_far_behind_reads_the_whole_list(
    registry_database_factory: RegistryDatabaseFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(package_list, "MAX_BEHIND", 5)
    one, two = await instances(registry_database_factory)
    for number in range(8):
        await one.record(f"pkg-{number}", entry("many"))
    await one.db.delete(LOG_PK, log_key(3))  # not needed: the whole list is read
    await two.refresh()
    assert len(found(two, "many")) == 8 and two.seen == 8


async def test_a_change_made_while_the_list_loads_is_kept(
    registry_database_factory: RegistryDatabaseFactory,
) -> None:
    (one,) = await instances(registry_database_factory, 1)
    for number in range(5):
        await one.record(f"pkg-{number}", entry("early"))
    loading = asyncio.ensure_future(one.load())
    await asyncio.sleep(0)
    await one.record("during", entry("early too"))
    await loading
    assert "during" in found(one, "early")
