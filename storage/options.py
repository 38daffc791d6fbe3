"""Config value parsers shared by every config section, whichever layer owns it.

They raise `ConfigError` (from `storage.base`, the lowest layer) naming the
key, so `uplinks/config.py`, the domain's sections and `registry/config.py`
report a bad value the same way.
"""

from __future__ import annotations

import re
from typing import Any

from storage.base import ConfigError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
UNITS_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
UNITS_BYTES = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def parse_duration(key: str, value: Any) -> float:
    """`30s`, `2m`, `5m`, `1h`, `500ms`; a bare number is seconds (as in Verdaccio)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(key, "must not be negative")
        return float(value)
    if isinstance(value, str):
        total = 0.0
        parts = re.findall(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?", value)
        if parts and re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*(ms|s|m|h|d|w)?)+\s*", value):
            for number, unit in parts:
                total += float(number) * UNITS_SECONDS[unit or "s"]
            return total
    raise ConfigError(key, f"{value!r} is not a duration like 30s, 2m, 1h")


def parse_size(key: str, value: Any) -> int:
    """`10mb`, `512kb`, `1gb`; a bare number is bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?b?)\s*", value.lower())
        if match and float(match.group(1)) > 0:
            return int(float(match.group(1)) * UNITS_BYTES[_size_unit(match.group(2))])
    raise ConfigError(key, f"{value!r} is not a size like 10mb")


def _size_unit(unit: str) -> str:
    return unit if unit in UNITS_BYTES else unit + "b"


def parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise ConfigError(key, "must be true or false")


def parse_int(key: str, value: Any, *, minimum: int, maximum: int) -> int:
    """A whole number within [minimum, maximum]; a string of digits counts, as an env var gives it."""
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum:
        return value
    raise ConfigError(key, f"{value!r} is not a whole number from {minimum} to {maximum}")


def parse_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of a few fixed words."""
    if isinstance(value, str) and value in choices:
        return value
    raise ConfigError(key, f"{value!r} is not one of {', '.join(choices)}")


def parse_str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a non-empty string")
    return value


def parse_section(key: str, raw: Any, known: set[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a mapping of options")
    for option in raw:
        if option not in known:
            raise ConfigError(f"{key}.{option}", "unknown option")
    return raw
