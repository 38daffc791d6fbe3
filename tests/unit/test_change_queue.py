"""Concurrent changes to one packument: merged into shared writes, none lost, none given up early.

`Packages` on a real directory store (two of them on one directory play two
instances); the queue alone for the timing and failure cases.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from registry.domain.change_queue import ChangeQueue, Doc
from registry.domain.errors import ServiceUnavailable
from registry.domain.packages import Packages
from storage.base import Conflict, StorageError
from storage.fs import FsPackageStore
from storage.sqlite import SqliteRegistryDatabase
from uplinks.documents import Current


def add(key: str) -> Any:
    def change(doc: Doc | None) -> Doc:
        doc = doc or {"name": "pkg", "marks": {}}
        return {**doc, "marks": {**doc["marks"], key: True}}
    return change


def refuse(doc: Doc | None) -> Doc:
    raise ValueError("refused")


@pytest.fixture
async def instances(tmp_path: Path) -> Any:
    db = SqliteRegistryDatabase(tmp_path / "db.sqlite")
    await db.open()
    made = [Packages(FsPackageStore(tmp_path / "store"), db) for _ in range(2)]
    yield made
    await db.close()


async def test_concurrent_changes_on_one_instance_share_writes_and_all_land(instances: list[Packages]) -> None:
    packages = instances[0]
    outcomes = await asyncio.gather(*(packages.update_packument("pkg", add(str(i))) for i in range(40)))
    stored = await packages.read("pkg")
    assert stored is not None and set(stored.doc["marks"]) == {str(i) for i in range(40)}
    assert packages.writes.merged > 0  # fewer writes than changes
    assert all(new == stored.doc for new, _ in outcomes)
    assert packages.conflicts == 0  # one writer per name in a process: nothing to lose to


async def test_a_refused_change_fails_alone(instances: list[Packages]) -> None:
    packages = instances[0]
    results = await asyncio.gather(
        packages.update_packument("pkg", add("a")),
        packages.update_packument("pkg", refuse),
        packages.update_packument("pkg", add("b")),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    stored = await packages.read("pkg")
    assert stored is not None and set(stored.doc["marks"]) == {"a", "b"}


async def test_two_instances_racing_on_one_name_lose_nothing(instances: list[Packages]) -> None:
    jobs = [instances[i % 2].update_packument("pkg", add(str(i))) for i in range(60)]
    await asyncio.gather(*jobs)
    stored = await instances[1].read("pkg")
    assert stored is not None and len(stored.doc["marks"]) == 60


def queue_over(doc: dict[str, Any], write: Any) -> ChangeQueue:
    async def read(name: str) -> Current | None:
        return Current(doc["now"], "t", 1) if doc["now"] is not None else None

    async def changed(name: str, current: Current, old: Doc | None) -> None:
        doc["now"] = current.doc

    return ChangeQueue(read, write, changed, deadline=0.3)


async def test_a_change_that_keeps_losing_gives_up_at_the_deadline_not_sooner() -> None:
    async def always_loses(name: str, new: Doc, current: Current | None) -> Current:
        raise Conflict("someone else wrote first")

    queue = queue_over({"now": None}, always_loses)
    began = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="too many concurrent changes"):
        await queue.submit("pkg", add("a"))
    assert 0.15 < time.monotonic() - began < 1.0
    assert queue.conflicts > 3


async def test_a_storage_error_fails_every_change_of_that_write() -> None:
    async def broken(name: str, new: Doc, current: Current | None) -> Current:
        raise StorageError("disk on fire")

    queue = queue_over({"now": None}, broken)
    results = await asyncio.gather(*(queue.submit("pkg", add(str(i))) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, StorageError) for r in results)


def held_queue() -> tuple[dict[str, Any], asyncio.Event, ChangeQueue]:
    """A queue whose writes wait until the event is set."""
    state: dict[str, Any] = {"now": None}
    release = asyncio.Event()

    async def slow(name: str, new: Doc, current: Current | None) -> Current:
        await release.wait()
        return Current(new, "t", 1)

    return state, release, queue_over(state, slow)


async def test_a_cancelled_change_still_waiting_is_withdrawn() -> None:
    state, release, queue = held_queue()
    first = asyncio.create_task(queue.submit("pkg", add("first")))
    await asyncio.sleep(0.01)  # the first is being written
    second = asyncio.create_task(queue.submit("pkg", add("second")))
    await asyncio.sleep(0.01)
    second.cancel()
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    await asyncio.sleep(0.01)
    assert set(state["now"]["marks"]) == {"first"}


async def test_a_cancelled_caller_whose_change_is_being_written_hears_only_after_the_write() -> None:
    state, release, queue = held_queue()
    caller = asyncio.create_task(queue.submit("pkg", add("a")))
    await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.sleep(0.01)
    assert not caller.done()  # waits for the write it is part of
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert state["now"]["marks"] == {"a": True}


async def test_a_write_whose_answer_was_lost_counts_as_landed() -> None:
    """The write landed, its answer was lost, and the retried request met its own write:
    the change succeeded (a publish must not answer "cannot publish over ..." for it)."""
    state: dict[str, Any] = {"now": {"name": "pkg", "marks": {}}}
    calls = 0

    async def lands_then_loses_the_answer(name: str, new: Doc, current: Current | None) -> Current:
        nonlocal calls
        calls += 1
        state["now"] = new
        raise Conflict("precondition failed (the retry of a request that had landed)")

    def once(doc: Doc | None) -> Doc:
        assert doc is not None
        if "a" in doc["marks"]:
            raise ValueError("cannot publish over the previously published version")
        return {**doc, "marks": {**doc["marks"], "a": True}}

    queue = queue_over(state, lands_then_loses_the_answer)
    stored, before = await queue.submit("pkg", once)
    assert stored["marks"] == {"a": True} and before == {"name": "pkg", "marks": {}}
    assert calls == 1


async def test_an_interrupt_inside_a_write_reaches_its_callers_instead_of_hanging_them() -> None:
    class Interrupted(BaseException):
        pass

    async def interrupted(name: str, new: Doc, current: Current | None) -> Current:
        raise Interrupted()

    queue = queue_over({"now": None}, interrupted)
    with pytest.raises(Interrupted):
        await asyncio.wait_for(queue.submit("pkg", add("a")), 5)
