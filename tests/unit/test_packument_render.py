"""The served bytes of a packument: written version by version (in memory, or into a file
for a large document) and exactly what `orjson.dumps` of the view would give; the
render cache letting go of a file; how a multi-MB document is parsed."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from registry.domain import packument_render
from registry.domain.caches import ReleasingCache
from registry.domain.packument_render import (
    ABBREVIATED,
    FULL,
    SpillFiles,
    render_bytes,
    revision,
)
from registry.domain.packument_views import abbreviate, rewrite_tarball_urls
from storage.heap import loads_handed, loads_text
from tests.unit.packuments import publish, three_versions
from uplinks.documents import MIRROR_MARK

BASE = "https://npm.example.com/prefix/"


def as_whole(doc: dict[str, Any], token: str, base: str, variant: str) -> bytes:
    """The view built as a whole document, then serialized at once: what the bytes must be."""
    view = rewrite_tarball_urls(doc, base)
    view.pop(MIRROR_MARK, None)
    view = abbreviate(view) if variant == ABBREVIATED else {**view, "_rev": revision(token, doc)}
    return orjson.dumps(view)


def odd_documents() -> list[dict[str, Any]]:
    many = {str(n): {"name": "many", "version": str(n), "dist": {}, "scripts": {"install": "x"}} for n in range(700)}
    return [
        three_versions(),
        {**publish(None, "@acme/ui", "1.0.0"), MIRROR_MARK: {"uplink": "up"}, "_rev": "7-stored"},
        {"name": "bare"},  # no versions at all: the view gets an empty one
        {"name": "odd", "versions": {"1.0.0": "not a manifest", "2.0.0": None}, "time": {}},
        {"name": "nul\x00", "versions": {}, "readme": "\x00 \u2028 é", "dist-tags": {"latest": "\x00"}},
        {"name": "many", "versions": many, "time": {"modified": "2020-01-01T00:00:00.000Z"}},
    ]


@pytest.mark.parametrize("variant", [FULL, ABBREVIATED])
def test_the_bytes_are_those_of_the_whole_view_serialized_at_once(variant: str) -> None:
    for doc in odd_documents():
        rendered = render_bytes(doc, "tok", BASE, variant)
        assert rendered.body == as_whole(doc, "tok", BASE, variant), doc.get("name")
        assert rendered.etag == f'"{hashlib.sha256(rendered.body).hexdigest()[:32]}"'
        assert rendered.size == len(rendered.body) and rendered.file is None


@pytest.mark.parametrize("variant", [FULL, ABBREVIATED])
def test_a_spilled_rendering_is_a_file_of_the_same_bytes_with_its_gzip(variant: str, tmp_path: Path) -> None:
    for doc in odd_documents():
        held = render_bytes(doc, "tok", BASE, variant)
        spilled = render_bytes(doc, "tok", BASE, variant, tmp_path)
        assert spilled.file is not None and spilled.file.parent == tmp_path and spilled.body == b""
        assert spilled.file.read_bytes() == held.body
        assert (spilled.etag, spilled.size) == (held.etag, len(held.body))
        assert spilled.gzipped is not None and gzip.decompress(spilled.gzipped) == held.body
        assert spilled.weight == spilled.size + len(spilled.gzipped)


def test_a_rendering_that_cannot_be_written_is_held_in_memory(tmp_path: Path) -> None:
    rendered = render_bytes(three_versions(), "tok", BASE, FULL, tmp_path / "gone")
    assert rendered.file is None and rendered.body == as_whole(three_versions(), "tok", BASE, FULL)


async def test_a_released_file_goes_after_the_grace_and_the_directory_with_its_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(packument_render, "SPILL_GRACE", 0.01)
    spill = SpillFiles()
    directory = spill.directory()
    assert directory is not None and spill.directory() == directory
    rendered = render_bytes(three_versions(), "tok", BASE, FULL, directory)
    assert rendered.file is not None
    spill.release(rendered)
    assert rendered.file.exists()  # a response may be about to send it
    await asyncio.sleep(0.1)
    assert not rendered.file.exists()
    del spill
    assert not directory.exists()


def test_the_render_cache_releases_what_it_evicts_replaces_or_drops() -> None:
    released: list[str] = []
    cache: ReleasingCache[str, str] = ReleasingCache(10, len, released.append)
    cache["a"] = "aaaa"
    cache["b"] = "bbbb"
    cache["c"] = "cccc"  # over 10: the least recently used goes
    assert released == ["aaaa"] and "a" not in cache
    cache["b"] = "BBBB"
    assert released == ["aaaa", "bbbb"]
    cache["b"] = cache["b"]  # the same value again: nothing to release
    cache.pop("c")
    assert released == ["aaaa", "bbbb", "cccc"]
    cache.clear()
    assert released == ["aaaa", "bbbb", "cccc", "BBBB"]


# -- parsing a multi-MB document ------------------------------------------------


def test_text_is_parsed_as_orjson_parses_bytes() -> None:
    for text in ['{"a": [1, -2, 3.5, 1E2, true, null, "\\u00e9"]}', '{"a":1,"a":2}', f'{{"big": {2**64}}}',
                 f'{{"small": {-(2**63) - 1}, "fits": {2**64 - 1}}}', '{"tiny": 1e-400}']:
        assert loads_text(text) == orjson.loads(text), text
    for text in ['{"a": NaN}', '{"a": -Infinity}', '{"a": 1e400}', '{"a": 1} x', '{"a": "\x01"}', "[" * 100_000]:
        with pytest.raises(ValueError):
            loads_text(text)
    with pytest.raises(ValueError):
        orjson.loads('{"a": NaN}')


def test_handed_text_leaves_the_box_empty() -> None:
    box = ['{"name": "x"}']
    assert loads_handed(box) == {"name": "x"} and box == []
