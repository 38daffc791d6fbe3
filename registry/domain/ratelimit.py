"""What a token does, kept in memory per instance: request rates and when it was last used.

- `RateLimiter`: a token bucket per token key. A limit of N requests per
  minute lets a burst of N through, then refills at N/60 per second. The
  buckets live in this process only: behind a load balancer with k
  instances a token may reach k times its limit at most.
- `LastUsedRecorder`: writes a token record's `last_used` at most once per
  token per `interval` seconds on this instance, in a background task, so a
  CI job's thousand requests cost one database write, never one per request,
  and a slow or failing database never slows or fails a request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from cachetools import TTLCache

from registry.domain.clock import now_iso
from registry.domain.errors import TooManyRequests
from registry.domain.users import touch_token
from storage.base import RegistryDatabase

LOG = logging.getLogger(__name__)

CACHE_SIZE = 10_000
LAST_USED_INTERVAL = 60.0
DRAIN_TIMEOUT = 5.0
SECONDS_PER_MINUTE = 60.0


@dataclass
class Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets keyed by token key; `check` raises TooManyRequests with Retry-After."""

    def __init__(self, maxsize: int = CACHE_SIZE) -> None:
        # A bucket idle for a minute is full again, so forgetting it then is exact.
        self.buckets: TTLCache[str, Bucket] = TTLCache(maxsize=maxsize, ttl=SECONDS_PER_MINUTE)

    def retry_after(self, key: str, per_minute: int, now: float | None = None) -> float:
        """Take one request from `key`'s bucket: 0 when allowed, else the seconds until one is."""
        now = time.monotonic() if now is None else now
        rate = per_minute / SECONDS_PER_MINUTE
        bucket = self.buckets.get(key) or Bucket(float(per_minute), now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        self.buckets[key] = bucket  # re-set: restarts its time to live
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def check_named(self, key: str, per_minute: int, what: str) -> None:
        """Count one event of `key`; 429 ("`what`; retry in N s") with Retry-After over the limit."""
        wait = self.retry_after(key, per_minute)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise TooManyRequests(f"{what}; retry in {seconds} s", headers={"Retry-After": str(seconds)})

    def check(self, key: str, per_minute: int) -> None:
        """Count one request of token `key`; 429 with Retry-After (whole seconds) over the limit."""
        wait = self.retry_after(key, per_minute)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise TooManyRequests(
                f"too many requests with this token: its limit is {per_minute} a minute;"
                f" retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )


class LastUsedRecorder:
    """Coalesced `last_used` writes: one per token per interval, off the request path."""

    def __init__(self, interval: float = LAST_USED_INTERVAL, maxsize: int = CACHE_SIZE) -> None:
        self.recent: TTLCache[str, bool] = TTLCache(maxsize=maxsize, ttl=interval)
        self.tasks: set[asyncio.Task[None]] = set()

    def seen(self, db: RegistryDatabase, user: str, key: str) -> None:
        """Note a use of token `key`; schedules a write unless one was made within the interval."""
        if key in self.recent:
            return
        self.recent[key] = True
        task = asyncio.get_running_loop().create_task(self._write(db, user, key, now_iso()))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _write(self, db: RegistryDatabase, user: str, key: str, when: str) -> None:
        try:
            await touch_token(db, user, key, when)
        except Exception as exc:  # noqa: BLE001 - a bookkeeping write must never fail anything
            LOG.warning("could not record the last use of token %s of %s: %r", key, user, exc)

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait for the writes under way (tests; shutdown), cancelling what outlasts `timeout`."""
        pending = set(self.tasks)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            LOG.warning("dropped %d last-used writes at shutdown", len(late))

