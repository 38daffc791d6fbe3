"""Give the heap back to the OS after work on a multi-MB JSON document, and parse
such documents with the least memory at once.

Used by the packument cache (`registry.domain.packages`) and the mirror
(`uplinks.mirror`); it lives at the bottom layer so both can.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")

# Work on a JSON document at least this large is followed by a heap trim, and
# such a document is parsed from text (`loads_text`).
TRIM_AFTER_BYTES = 4 * 1024 * 1024

# glibc's mallopt parameters.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# A multi-MB document's bytes, its text and its JSON to store are each one
# block this large or more: mapped apart from the heap, they go back to the OS
# the moment they are freed. glibc's own threshold rises to 32 MB after the
# first such block is freed, and from then on they are carved from the heap,
# where the holes they leave stay resident (the bench's peak: 192 MB with
# glibc's defaults, 179 with these).
MMAP_THRESHOLD = 1024 * 1024
# Setting the threshold above stops glibc adjusting this one too: left at its
# 128 KB, the heap would be shrunk and grown again around every response of a
# few hundred KB (the full packument row's CPU per request went 0.27 -> 0.8 ms).
TRIM_THRESHOLD = 4 * 1024 * 1024


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only: probe it
        return libc
    except (OSError, AttributeError):  # not glibc: nothing to tune or trim with
        return None


LIBC = _libc()
MALLOC_TRIM: Callable[[int], int] | None = LIBC.malloc_trim if LIBC is not None else None


def map_large_blocks() -> bool:
    """Have glibc map every block of MMAP_THRESHOLD bytes or more on its own (and keep
    up to TRIM_THRESHOLD free at the heap's top); False without glibc. Once per process."""
    mallopt = getattr(LIBC, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def trim() -> None:
    """Hand the heap's free pages back to the OS (after a multi-MB document was let go of)."""
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


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


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number is infinity when parsed as double: {text[:40]}")
    return value


def _int(text: str) -> int | float:
    value = int(text)
    # orjson reads integers beyond 64 bits as floats: so do we.
    return value if -(2**63) <= value < 2**64 else float(text)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_float, parse_int=_int)


def loads_text(text: str) -> Any:
    """Parse a multi-MB JSON document from its text, then trim the heap; ValueError when it is not JSON.

    The standard library's scanner builds the Python objects directly, where
    orjson first builds a tree of its own (44 MB more for a 21 MB packument,
    on top of its 87 MB of objects against the scanner's 80); and the caller
    can drop the document's bytes once it holds the text, so they are not
    held through the parse. It accepts what orjson accepts, and reads numbers
    as orjson does; a lone surrogate escape it lets through, which
    `orjson.dumps` refuses later (the mirror's store step). It is about 20%
    slower than orjson, and only used from TRIM_AFTER_BYTES up.
    """
    try:
        return trimmed(_DECODER.decode, text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def loads_handed(box: list[str]) -> Any:
    """`loads_text` of the text in `box`, taken out of it. For a worker thread: its
    work item keeps the call's arguments until that thread next runs, which can be
    well after the result is back (the event loop holding the GIL meanwhile);
    with the text handed over in a box, nothing but the parse refers to it."""
    return loads_text(box.pop())
