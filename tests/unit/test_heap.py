"""`trimmed` runs the work and gives the heap back, whatever the work did."""

from __future__ import annotations

import orjson
import pytest

from storage import heap as caches
from storage.heap import trimmed


def test_trimmed_returns_the_result_and_trims(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(caches, "MALLOC_TRIM", calls.append)
    assert trimmed(orjson.loads, b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert calls == [0]


def test_trimmed_trims_after_a_failure_too(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(caches, "MALLOC_TRIM", calls.append)
    with pytest.raises(orjson.JSONDecodeError):
        trimmed(orjson.loads, b"{not json")
    assert calls == [0]


def test_glibc_trim_is_found_on_linux() -> None:
    # The machines tarhold runs on are glibc Linux; without it the trim is skipped.
    assert caches.MALLOC_TRIM is not None
