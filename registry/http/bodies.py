"""Request bodies: JSON read once, bounded by `max_body_size`, refused with npm-printable errors."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from registry.domain.errors import BadRequest, PayloadTooLarge
from registry.http.appkeys import CONFIG

NOT_JSON = "request body is not valid JSON"
NOT_OBJECT = "request body must be a JSON object"
# npm's documents nest a handful of levels; orjson reads up to 1024 but
# writes only 254, so a deeper body could be stored and never served again.
MAX_DEPTH = 64


def nesting_depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests objects and arrays more than `limit` deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than the limit of {limit} bytes (max_body_size)")


async def read_json(request: web.Request, *, invalid: str = NOT_JSON, empty: Any = None) -> Any:
    """The body parsed as JSON; 413 past `max_body_size`, 400 (`invalid`) when it is not JSON.

    `empty` not None: what an empty (or blank) body stands for, instead of a 400.
    """
    limit = request.app[CONFIG].max_body_size
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    if empty is not None and not data.strip():
        return empty
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadRequest(invalid) from None
    if nesting_depth_exceeds(value):
        raise BadRequest(f"request body nests more than {MAX_DEPTH} levels deep")
    return value


async def read_object(
    request: web.Request, *, allowed: set[str] | None = None, empty_ok: bool = False
) -> dict[str, Any]:
    """The body as a JSON object; 400 when it is not one, or names a field not in `allowed`.

    `empty_ok`: an empty body is the empty object.
    """
    body = await read_json(request, empty={} if empty_ok else None)
    if not isinstance(body, dict):
        raise BadRequest(NOT_OBJECT)
    if allowed is not None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise BadRequest(
                f"unknown field {unknown[0]!r}; this endpoint takes {', '.join(sorted(allowed))}"
            )
    return body


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | web.FileField]:
    """An HTML form post; 400 when the body is not a form its Content-Type says it is."""
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(request.app[CONFIG].max_body_size) from None
    except (ValueError, UnicodeDecodeError, AssertionError) as exc:
        raise BadRequest(f"request body is not a valid form: {exc}") from None


def query_int(request: web.Request, key: str, default: int, low: int, high: int, *, clamp: bool = False) -> int:
    """A whole-number query parameter (`default` when absent); 400 when it is not a number, and when
    it is outside [low, high] unless `clamp` (npm search's `size` and `from`) pulls it in."""
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{key} must be a whole number") from None
    if clamp:
        return max(low, min(high, value))
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low} and {high}")
    return value
