"""Failed sign-ins slow down whoever makes them, without locking the owner out.

Every channel that checks a password (Basic auth, `npm login`/`adduser`, the
npm web-login form, the web UI's form, `npm token create`, a password change)
asks one `LoginThrottle` first and reports the outcome after. Three counters
of failures, each forgotten `window` seconds after its last failure:

- per account and client address: `free_pair` failures, then each further
  try waits 1, 2, 4, ... seconds (at most `max_delay`) after the last failure;
- per client address, whatever the account: `free_address` failures, then
  the same backoff (one address trying many accounts);
- per account, whatever the address: `free_account` failures, then the same
  backoff, but only for addresses that have not signed in to that account
  successfully lately (`trusted_for`): a distributed attack on one account
  slows the attackers, and the owner still signs in from where they usually do.

A throttled try is refused before the password is checked, so it costs no
scrypt work either, and it is answered the same whether the account exists.
The counters live in this process (per instance and worker): behind k
instances an attacker gets at most k times the tries, still slowed the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

REMEMBERED = 100_000


@dataclass
class Failures:
    count: int
    last: float


class LoginThrottle:
    """Backoff on failed sign-ins per account+address, per address and per account."""

    def __init__(
        self,
        *,
        free_pair: int = 5,
        free_address: int = 30,
        free_account: int = 100,
        window: float = 900.0,
        max_delay: float = 900.0,
        trusted_for: float = 30 * 86400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_pair, self.free_address, self.free_account = free_pair, free_address, free_account
        self.max_delay = max_delay
        self.clock = clock
        self.pairs: TTLCache[tuple[str, str], Failures] = TTLCache(REMEMBERED, window, timer=clock)
        self.addresses: TTLCache[str, Failures] = TTLCache(REMEMBERED, window, timer=clock)
        self.accounts: TTLCache[str, Failures] = TTLCache(REMEMBERED, window, timer=clock)
        self.trusted: TTLCache[tuple[str, str], bool] = TTLCache(REMEMBERED, trusted_for, timer=clock)

    def _wait(self, failures: Failures | None, free: int, now: float) -> float:
        if failures is None or failures.count < free:
            return 0.0
        delay = min(self.max_delay, 2.0 ** (failures.count - free))
        return max(0.0, failures.last + delay - now)

    def retry_after(self, account: str, address: str) -> float:
        """Seconds before `address` may try a password for `account` again (0: now)."""
        now = self.clock()
        waits = [
            self._wait(self.pairs.get((account, address)), self.free_pair, now),
            self._wait(self.addresses.get(address), self.free_address, now),
        ]
        if (account, address) not in self.trusted:
            waits.append(self._wait(self.accounts.get(account), self.free_account, now))
        return max(waits)

    def failed(self, account: str, address: str) -> None:
        """Count a wrong password (or an unknown account) from `address`."""
        now = self.clock()
        for cache, key in ((self.pairs, (account, address)), (self.addresses, address), (self.accounts, account)):
            known = cache.get(key)  # type: ignore[attr-defined]
            cache[key] = Failures((known.count if known else 0) + 1, now)  # type: ignore[index]

    def succeeded(self, account: str, address: str) -> None:
        """A right password: this pair starts afresh and the address is trusted for the account."""
        self.pairs.pop((account, address), None)
        self.trusted[(account, address)] = True
