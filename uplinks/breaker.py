"""A circuit breaker per uplink: after `max_fails` failures within
`fail_timeout`, skip the uplink until `fail_timeout` has passed, then let one
request through to probe it (half-open).

Each change of state is told to `on_change` (the mirror passes it on to its
`UplinkEvents`), once per change.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self, max_fails: int, fail_timeout: float, clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout
        self.clock = clock
        self.on_change = on_change
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probing = False
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

    def allow(self) -> bool:
        """May a request go to the uplink now?"""
        allowed = self._allow()
        self.report_state()
        return allowed

    def _allow(self) -> bool:
        state = self.state
        if state == "closed" or self.max_fails == 0:
            return True
        if state == "half-open" and not self._probing:
            self._probing = True  # exactly one probe at a time
            return True
        return False

    def success(self) -> None:
        self._failures.clear()
        self._opened_at = None
        self._probing = False
        self.report_state()

    def failure(self) -> None:
        now = self.clock()
        self._probing = False
        if self._opened_at is not None:
            self._opened_at = now  # the probe failed: stay open another round
        else:
            self._failures.append(now)
            while self._failures and now - self._failures[0] > self.fail_timeout:
                self._failures.popleft()
            if self.max_fails and len(self._failures) >= self.max_fails:
                self._opened_at = now
        self.report_state()
