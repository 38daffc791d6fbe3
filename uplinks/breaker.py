"""A circuit breaker per uplink, with Verdaccio's semantics.

`max_fails` consecutive failures (timeouts included) take the uplink offline
for `fail_timeout`: while it is open, uncached requests are refused at once
(the mirror serves what it holds). After `fail_timeout` one probe request
goes through (half-open) and decides: a success closes the circuit, a
failure keeps it open another round.

A stalling upstream fails each request only after the whole `timeout`, so
counting failures alone would let every request that arrives meanwhile reach
it too. Once a fetch has been outstanding for `stall_after` seconds with no
success since it began, the uplink is suspect: new fetches are let through
only while the ones in flight plus the failures so far stay below
`max_fails`. A healthy uplink, whose fetches answer quickly, is never held
back however many run at once.

Callers bracket every fetch: `attempt = breaker.begin()` (None: refused),
then `breaker.end(attempt, ok)`. A fetch no client waits for (a prefetch)
begins with `optional=True`: it goes through only while the breaker is
calm, never as the probe, and does not take a client's place in the budget
of a suspect uplink (its outcome counts like any other). Each change of state is told to
`on_change` (the mirror passes it on to its `UplinkEvents`), once per change.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Attempt:
    """One fetch the breaker let through."""

    number: int
    began: float
    probe: bool = False
    optional: bool = False


class CircuitBreaker:
    def __init__(
        self, max_fails: int, fail_timeout: float, clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None, stall_after: float = math.inf,
    ) -> None:
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout
        self.stall_after = stall_after
        self.clock = clock
        self.on_change = on_change
        self.fails = 0  # consecutive
        self._opened_at: float | None = None
        self._probing = False
        self._last_success = -math.inf
        self._in_flight: dict[int, float] = {}
        self._optional: set[int] = set()  # the attempts in flight that no client waits for
        self._numbers = itertools.count()
        self._reported: str | None = None
        self.report_state()

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self.clock() - self._opened_at >= self.fail_timeout:
            return "half-open"
        return "open"

    def report_state(self) -> None:
        """Tell `on_change` the state if it changed since it was last told.

        Called after every call below, and by whoever shows the state (the
        metrics scrape): an open circuit turns half-open with time alone.
        """
        if self.on_change is None:
            return
        state = self.state
        if state != self._reported:
            self._reported = state
            self.on_change(state)

    def available(self) -> bool:
        """Whether the uplink is not known to be down (asks nothing of it, takes no probe)."""
        return self.max_fails == 0 or self.state != "open"

    def calm(self) -> bool:
        """Closed, no failure since the last success and nothing stalling: fit for traffic
        no client waits for (prefetch), which must never take a probe or add to a failing uplink."""
        return self._opened_at is None and self.fails == 0 and not self._suspect(self.clock())

    def begin(self, optional: bool = False) -> Attempt | None:
        """Let one fetch through, or None when the uplink is offline or suspect and busy
        (an `optional` one: unless it is calm)."""
        attempt = self._begin(optional)
        self.report_state()
        return attempt

    def _begin(self, optional: bool) -> Attempt | None:
        now = self.clock()
        if optional:
            return self._start(now, optional=True) if self.max_fails == 0 or self.calm() else None
        state = self.state
        if self.max_fails == 0:
            return self._start(now)
        if state == "open":
            return None
        if state == "half-open":
            if self._probing:
                return None
            self._probing = True  # exactly one probe at a time
            return self._start(now, probe=True)
        if self._suspect(now) and self.fails + len(self._in_flight) - len(self._optional) >= self.max_fails:
            return None
        return self._start(now)

    def _start(self, now: float, probe: bool = False, optional: bool = False) -> Attempt:
        attempt = Attempt(next(self._numbers), now, probe, optional)
        self._in_flight[attempt.number] = now
        if optional:
            self._optional.add(attempt.number)
        return attempt

    def _suspect(self, now: float) -> bool:
        """A failure not yet followed by a success, or a fetch outstanding too long since the last success."""
        if self.fails:
            return True
        return any(
            began > self._last_success and now - began >= self.stall_after for began in self._in_flight.values()
        )

    def end(self, attempt: Attempt, ok: bool | None) -> None:
        """Record how a fetch `begin` let through ended: ok, failed, or None for neither
        (it was cancelled, or failed for a reason that is not the uplink's)."""
        self._in_flight.pop(attempt.number, None)
        self._optional.discard(attempt.number)
        now = self.clock()
        if attempt.probe:
            self._probing = False
        if ok is None:
            self.report_state()
            return
        if ok:
            self.fails = 0
            self._opened_at = None
            self._last_success = now
        else:
            self.fails += 1
            if self._opened_at is not None:
                self._opened_at = now  # a failed probe (or a late failure): offline another round
            elif self.max_fails and self.fails >= self.max_fails:
                self._opened_at = now
        self.report_state()
