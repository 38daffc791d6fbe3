"""The login throttle: backoff per account+address, per address, per account; the owner is not locked out."""

from __future__ import annotations

from registry.domain.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **limits: int) -> LoginThrottle:
    return LoginThrottle(clock=clock, **{"free_pair": 3, "free_address": 10, "free_account": 20, **limits})


def test_a_few_failures_are_free_then_each_try_waits_twice_as_long() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(3):
        assert t.retry_after("alice", "10.0.0.1") == 0
        t.failed("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == 1.0
    clock.now += 1
    t.failed("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == 2.0
    clock.now += 2
    t.failed("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == 4.0


def test_the_delay_is_capped() -> None:
    clock = Clock()
    t = LoginThrottle(clock=clock, free_pair=0, max_delay=60)
    for _ in range(30):
        t.failed("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == 60


def test_the_owner_from_another_address_is_not_slowed_by_an_attack_from_one() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(8):
        t.failed("alice", "10.0.0.66")
    assert t.retry_after("alice", "10.0.0.66") > 0
    assert t.retry_after("alice", "10.0.0.1") == 0


def test_one_address_trying_many_accounts_is_slowed() -> None:
    clock = Clock()
    t = throttle(clock)
    for i in range(10):
        t.failed(f"user{i}", "10.0.0.66")
    assert t.retry_after("someone-else", "10.0.0.66") > 0
    assert t.retry_after("someone-else", "10.0.0.1") == 0


def test_a_distributed_attack_on_one_account_spares_addresses_it_signed_in_from() -> None:
    clock = Clock()
    t = throttle(clock)
    t.succeeded("alice", "10.0.0.1")  # alice's usual address
    for i in range(25):
        t.failed("alice", f"192.0.2.{i}")
    assert t.retry_after("alice", "198.51.100.7") > 0  # a new address waits
    assert t.retry_after("alice", "10.0.0.1") == 0  # alice does not


def test_a_right_password_starts_the_pair_afresh() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(3):
        t.failed("alice", "10.0.0.1")
    t.succeeded("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == 0


def test_failures_are_forgotten_after_the_window() -> None:
    clock = Clock()
    t = LoginThrottle(clock=clock, free_pair=1, window=60)
    t.failed("alice", "10.0.0.1")
    t.failed("alice", "10.0.0.1")
    clock.now += 61
    assert t.retry_after("alice", "10.0.0.1") == 0
