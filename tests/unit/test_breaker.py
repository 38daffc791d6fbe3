"""The circuit breaker: consecutive failures open it, a stalling uplink is held back, one probe decides."""

from __future__ import annotations

from uplinks.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_max_fails_consecutive_failures_open_it_however_slow_they_were() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, clock)
    first = breaker.begin()
    clock.now += 10  # a fetch that stalled the whole timeout
    breaker.end(first, False)
    second = breaker.begin()
    clock.now += 10  # the first failure is a whole fail_timeout old by now
    breaker.end(second, False)
    assert breaker.state == "open"
    assert breaker.begin() is None


def test_a_success_between_failures_starts_the_count_again() -> None:
    breaker = CircuitBreaker(2, 10.0, Clock())
    breaker.end(breaker.begin(), False)
    breaker.end(breaker.begin(), True)
    breaker.end(breaker.begin(), False)
    assert breaker.state == "closed"


def test_after_fail_timeout_one_probe_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock)
    breaker.end(breaker.begin(), False)
    clock.now += 5
    probe = breaker.begin()
    assert probe is not None and probe.probe
    assert breaker.begin() is None  # one probe at a time
    breaker.end(probe, False)
    assert breaker.state == "open"  # another round
    clock.now += 5
    probe = breaker.begin()
    breaker.end(probe, True)
    assert breaker.state == "closed" and breaker.begin() is not None


def test_a_stalling_uplink_gets_no_more_fetches_than_max_fails() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, clock, stall_after=0.5)
    first = breaker.begin()
    clock.now += 0.6  # the first fetch has stalled half a timeout
    second = breaker.begin()  # 1 in flight < 2: still allowed
    assert second is not None
    clock.now += 0.6
    assert breaker.begin() is None  # 2 in flight, both unproven: the rest wait
    breaker.end(first, False)
    assert breaker.begin() is None
    breaker.end(second, False)
    assert breaker.state == "open"


def test_a_healthy_uplink_is_never_held_back_however_many_fetches_run() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, clock, stall_after=0.5)
    attempts = [breaker.begin() for _ in range(50)]
    assert None not in attempts
    clock.now += 0.1
    for attempt in attempts[:25]:
        breaker.end(attempt, True)
    clock.now += 1  # the rest are slow, but a success came after they began
    assert breaker.begin() is not None


def test_an_optional_fetch_goes_only_while_calm_and_takes_no_clients_place() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, clock, stall_after=0.5)
    optional = [breaker.begin(optional=True) for _ in range(8)]
    assert None not in optional and breaker.calm()
    clock.now += 0.6  # they all stall: the uplink is suspect, no longer calm
    assert not breaker.calm() and breaker.begin(optional=True) is None
    first, second = breaker.begin(), breaker.begin()  # the clients' budget is theirs alone
    assert first is not None and second is not None and breaker.begin() is None
    for attempt in optional:
        breaker.end(attempt, False)  # its failures are the uplink's all the same
    assert breaker.state == "open" and breaker.begin(optional=True) is None
    clock.now += 10  # half-open: the probe is a client's, never a prefetch's
    assert breaker.begin(optional=True) is None and breaker.begin() is not None


def test_an_outcome_that_is_not_the_uplinks_changes_nothing() -> None:
    breaker = CircuitBreaker(1, 5.0, Clock())
    breaker.end(breaker.begin(), None)
    assert breaker.state == "closed" and breaker.fails == 0


def test_max_fails_zero_never_opens() -> None:
    breaker = CircuitBreaker(0, 5.0, Clock())
    for _ in range(10):
        breaker.end(breaker.begin(), False)
    assert breaker.begin() is not None and breaker.available()
