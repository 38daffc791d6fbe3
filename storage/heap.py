"""Give the heap back to the OS after work on a multi-MB JSON document.

Used by the packument cache (`registry.domain.packages`) and the mirror
(`uplinks.mirror`); it lives at the bottom layer so both can.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")

# Work on a JSON document at least this large is followed by a heap trim.
TRIM_AFTER_BYTES = 4 * 1024 * 1024


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc: nothing to trim with
        return None


MALLOC_TRIM = _malloc_trim()


def trimmed(fn: Callable[..., R], *args: Any) -> R:
    """`fn(*args)`, then hand the heap it freed back to the OS.

    Parsing and rendering a multi-MB packument makes and drops hundreds of MB
    of short-lived objects; glibc keeps that memory in the process unless
    asked, so the resident size would stay at its high-water mark. Meant for
    worker threads (asyncio.to_thread), since a trim takes milliseconds.
    """
    try:
        return fn(*args)
    finally:
        if MALLOC_TRIM is not None:
            MALLOC_TRIM(0)
