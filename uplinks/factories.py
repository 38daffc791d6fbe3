"""The uplink types a config may name: `npm`, plus any a package installs."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from .npm import NpmUplink


def uplink_factories() -> dict[str, Any]:
    """`type:` names to uplink classes: `npm`, plus the `tarhold.uplinks` entry points."""
    factories: dict[str, Any] = {"npm": NpmUplink}
    for entry in entry_points(group="tarhold.uplinks"):
        factories.setdefault(entry.name, entry)
    return factories
