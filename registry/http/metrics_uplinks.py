"""Uplink metrics: the mirror's events (`uplinks.events.UplinkEvents`) fed into
the `tarhold_uplink_*` series."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from registry.http.metrics import UPLINK_EVENTS, metrics
from uplinks.events import UplinkEvents

CIRCUIT_STATES = {"closed": 0, "open": 1, "half-open": 2}


class MetricsUplinkEvents(UplinkEvents):
    """Counts the mirror's events into Prometheus, and shows each circuit's state as a gauge."""

    def __init__(self, uplinks: Iterable[str]) -> None:
        self.metrics = metrics()
        self._gauges: dict[str, Any] = {}
        # Every series of a configured uplink exists from the start, at 0, so
        # a rate() over it has a first sample before the first event.
        for name in uplinks:
            for what in UPLINK_EVENTS:
                self.metrics.uplink_event(name, what, 0)

    def count(self, uplink: str, event: str, amount: int = 1) -> None:
        """Add to the series UPLINK_EVENTS names for `event`."""
        self.metrics.uplink_event(uplink, event, amount)

    def circuit_changed(self, uplink: str, state: str) -> None:
        """tarhold_uplink_circuit_state: 0 closed, 1 open, 2 half-open."""
        gauge = self._gauges.get(uplink)
        if gauge is None:
            gauge = self._gauges[uplink] = self.metrics.circuit.labels(uplink)
        gauge.set(CIRCUIT_STATES[state])
