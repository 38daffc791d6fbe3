"""Large documents in the packument cache: kept parsed only while in use, rechecked by
their token alone, parsed from text, and their renderings kept in files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from registry.domain import packages as packages_module
from registry.domain import packument_render
from registry.domain.caches import CacheConfig
from registry.domain.packages import FULL, Packages
from storage.base import PackageStore
from storage.fs import FsPackageStore
from storage.sqlite import SqliteRegistryDatabase

BASE = "http://127.0.0.1:4873"


class Counted:
    """Counts reads and token checks of a store's packuments."""

    def __init__(self, store: PackageStore) -> None:
        self.reads = self.tokens = 0
        read, token = store.read_packument, store.packument_token  # type: ignore[attr-defined]

        async def counted_read(name: str) -> Any:
            self.reads += 1
            return await read(name)

        async def counted_token(name: str) -> str:
            self.tokens += 1
            return str(await token(name))

        store.read_packument = counted_read  # type: ignore[method-assign]
        store.packument_token = counted_token  # type: ignore[attr-defined]


def document(versions: int) -> dict[str, Any]:
    return {
        "_id": "big", "name": "big", "dist-tags": {"latest": f"1.0.{versions - 1}"},
        "versions": {f"1.0.{n}": {"name": "big", "version": f"1.0.{n}", "dist": {"shasum": "0" * 40}}
                     for n in range(versions)},
        "time": {"created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z"},
    }


@pytest.fixture
async def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # "Large" scaled down: over 1 KB kept parsed only while in use, over 2 KB parsed
    # from text and rendered into files.
    monkeypatch.setattr(packages_module, "LARGE_HOLD", 1.0)
    monkeypatch.setattr(packages_module, "TRIM_AFTER_BYTES", 2048)
    monkeypatch.setattr(packument_render, "SPILL_GRACE", 0.05)
    db = SqliteRegistryDatabase(tmp_path / "db.sqlite")
    await db.open()
    made = Packages(FsPackageStore(tmp_path / "store"), db, CacheConfig(packument_ttl=0.1, parsed_max_size=1024))
    await made.store.write_packument("big", orjson.dumps(document(40)), if_absent=True)
    yield made
    await db.close()


async def test_a_large_document_is_kept_parsed_while_in_use_and_dropped_after(packages: Packages) -> None:
    counted = Counted(packages.store)
    first = await packages.read("big", cached=True)
    assert first is not None and counted.reads == 1
    # Read again within the hold (the TTL over): storage is asked for the token only.
    for _ in range(4):
        await asyncio.sleep(0.12)
        again = await packages.read("big", cached=True)
        assert again is first
    assert counted.reads == 1 and counted.tokens == 4
    # Unused for longer than the hold: let go of, read and parsed again next time.
    await asyncio.sleep(1.3)
    assert packages._held("big") is None
    again = await packages.read("big", cached=True)
    assert again is not None and again is not first and again.doc == first.doc
    assert counted.reads == 2


async def test_a_changed_large_document_is_read_again(packages: Packages) -> None:
    first = await packages.read("big", cached=True)
    assert first is not None
    await packages.store.write_packument("big", orjson.dumps(document(41)), if_match=first.token)
    await asyncio.sleep(0.12)
    again = await packages.read("big", cached=True)
    assert again is not None and len(again.doc["versions"]) == 41


async def test_large_renderings_are_files_let_go_of_when_the_document_changes(packages: Packages) -> None:
    current = await packages.read("big")
    assert current is not None
    full = await packages.render("big", current, BASE, FULL)
    assert full.file is not None and full.file.parent == packages.spill.path
    assert orjson.loads(full.file.read_bytes())["versions"]["1.0.0"]["dist"]["tarball"] == (
        f"{BASE}/big/-/big-1.0.0.tgz"
    )
    assert await packages.render("big", current, BASE, FULL) is full  # built once
    changed = await packages.update_packument("big", lambda doc: {**(doc or {}), "description": "new"})
    assert changed[0]["description"] == "new"
    await asyncio.sleep(0.2)
    assert not full.file.exists()  # the old document's bytes: nobody asks for them any more
    assert len(list(packages.spill.path.iterdir())) >= 1  # the new one's, pre-rendered
