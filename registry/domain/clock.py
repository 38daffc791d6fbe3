"""Timestamps as the npm registry writes them: `2024-05-01T12:00:00.123Z` (UTC, milliseconds)."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_iso() -> str:
    """The current time as npm shows it: `2024-05-01T12:00:00.000Z`."""
    return iso(time.time())


def iso(epoch: float) -> str:
    """`epoch` (seconds) as npm shows a time."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
