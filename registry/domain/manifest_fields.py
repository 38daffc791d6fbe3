"""The manifest fields the registry reads are checked at publish: type and size, 422 naming the field.

npm normalizes package.json before it publishes (`npm pack` and
libnpmpublish), so what it sends always has these shapes; anything else came
from another client or by hand, and would otherwise be stored and served to
every installer. Fields not listed here are kept as they are: the registry
does not read them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from registry.domain.errors import PublishError

MAX_TEXT = 2048  # a URL, a name, an e-mail address, a license expression
MAX_DESCRIPTION = 16 * 1024
MAX_ITEMS = 1000  # keywords, people, dependencies, scripts, bin entries
DEPENDENCY_FIELDS = ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies")


def _refuse(field: str, what: str) -> PublishError:
    return PublishError(422, f"{field} in the manifest must be {what}")


def _text(field: str, value: Any, limit: int = MAX_TEXT) -> None:
    if not isinstance(value, str):
        raise _refuse(field, "a string")
    if len(value) > limit:
        raise _refuse(field, f"at most {limit} characters")


def _person(field: str, value: Any) -> None:
    """A person: "Name <email> (url)" or {name, email?, url?}."""
    if isinstance(value, str):
        _text(field, value)
        return
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise _refuse(field, 'a string or an object with a "name" string')
    for key in ("name", "email", "url"):
        if key in value and value[key] is not None:
            _text(f"{field}.{key}", value[key])


def _list(field: str, value: Any, item: Callable[[str, Any], None]) -> None:
    if not isinstance(value, list):
        raise _refuse(field, "a list")
    if len(value) > MAX_ITEMS:
        raise _refuse(field, f"a list of at most {MAX_ITEMS} entries")
    for index, entry in enumerate(value):
        item(f"{field}[{index}]", entry)


def _string_map(field: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _refuse(field, "an object of strings")
    if len(value) > MAX_ITEMS:
        raise _refuse(field, f"an object of at most {MAX_ITEMS} entries")
    for key, entry in value.items():
        _text(f"{field}.{key}", key)
        _text(f"{field}.{key}", entry)


def _text_or_map(field: str, value: Any, keys: tuple[str, ...]) -> None:
    """A string, or an object whose `keys` (when present) are strings."""
    if isinstance(value, str):
        _text(field, value)
        return
    if not isinstance(value, dict):
        raise _refuse(field, f"a string or an object with {', '.join(keys)}")
    for key in keys:
        if key in value and value[key] is not None:
            _text(f"{field}.{key}", value[key])


def _bin(field: str, value: Any) -> None:
    if isinstance(value, str):
        _text(field, value)
    else:
        _string_map(field, value)


def _license(field: str, value: Any) -> None:
    # An SPDX expression, or the legacy {type, url} object npm still accepts.
    _text_or_map(field, value, ("type", "url"))


CHECKS: dict[str, Callable[[str, Any], None]] = {
    "description": lambda field, value: _text(field, value, MAX_DESCRIPTION),
    "keywords": lambda field, value: _list(field, value, _text),
    "author": _person,
    "maintainers": lambda field, value: _list(field, value, _person),
    "contributors": lambda field, value: _list(field, value, _person),
    "license": _license,
    "repository": lambda field, value: _text_or_map(field, value, ("type", "url", "directory")),
    "bugs": lambda field, value: _text_or_map(field, value, ("url", "email")),
    "homepage": _text,
    "bin": _bin,
    "scripts": _string_map,
    "deprecated": _text,
    **{name: _string_map for name in DEPENDENCY_FIELDS},
}


def check_manifest_fields(manifest: dict[str, Any]) -> None:
    """Raise PublishError(422) naming the first field the registry reads that has the wrong shape."""
    for field, check in CHECKS.items():
        if field in manifest and manifest[field] is not None:
            check(field, manifest[field])
