"""Requests-per-minute and tokens-per-minute limits for one generation job."""

from __future__ import annotations

import asyncio
import time

BURST_SECONDS = 6.0


class _Bucket:
    """A token bucket refilled continuously at ``per_minute / 60`` per second, holding
    at most :data:`BURST_SECONDS` worth, so a fresh job cannot spend a minute's budget
    in one burst."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * BURST_SECONDS)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def wait_time(self, amount: float) -> float:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        amount = min(amount, self.capacity)
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate


class RateLimiter:
    """Waits before a request until both budgets allow it; no limit when unset."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None):
        self._buckets = [
            (bucket, is_tokens)
            for bucket, is_tokens in (
                (_Bucket(requests_per_minute) if requests_per_minute else None, False),
                (_Bucket(tokens_per_minute) if tokens_per_minute else None, True),
            )
            if bucket is not None
        ]
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        if not self._buckets:
            return
        async with self._lock:
            for bucket, is_tokens in self._buckets:
                while (delay := bucket.wait_time(tokens if is_tokens else 1)) > 0:
                    await asyncio.sleep(delay)
