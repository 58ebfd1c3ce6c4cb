"""Calls to Redis with a deadline, and what to do while Redis does not answer.

Shared by the Redis-backed limiters (:mod:`propylon.limits`) and the Redis cache
storage (:mod:`propylon.cache.redis_store`); it depends on neither. Each of them must
answer every request whether Redis answers or not, so :class:`RedisGuard` runs one
call with a hard deadline and, when Redis cannot answer, raises
:class:`RedisUnavailable` for the caller to fall back on its own policy (admit or
reject, go upstream uncached):

* it logs **one** warning when an outage starts and one info line when Redis answers
  again, however many calls fail in between;
* during an outage it stops asking Redis for ``retry_after`` seconds, so calls fail at
  once instead of each waiting for a timeout; after that one call probes Redis while
  the others keep failing fast.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = ["RedisGuard", "RedisUnavailable", "redis_client"]

T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis did not answer; the caller applies its fallback."""


def redis_client(url: str, timeout: float) -> aioredis.Redis:
    """A client for ``url`` that gives up after ``timeout`` seconds and never retries
    (the guard decides when to ask again)."""
    return aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                   retry=Retry(NoBackoff(), 0))


class RedisGuard:
    """Deadline and outage bookkeeping for one user of a Redis client.

    Args:
        name: how log lines name the user (``"cache"``, a limiter's name).
        fallback: what happens meanwhile, for the warning (``"requests go upstream
            uncached"``).
        logger: where the two lines go.
        timeout: deadline in seconds for one call.
        retry_after: seconds to fail fast after a failure before asking Redis again.
    """

    __slots__ = ("name", "fallback", "logger", "timeout", "retry_after", "_down_since", "_next_probe")

    def __init__(self, name: str, fallback: str, logger: logging.Logger, *, timeout: float,
                 retry_after: float) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.name = name
        self.fallback = fallback
        self.logger = logger
        self.timeout = timeout
        self.retry_after = retry_after
        self._down_since: Optional[float] = None
        self._next_probe = 0.0

    @property
    def available(self) -> bool:
        """False while an outage is in progress (since the last failed call)."""
        return self._down_since is None

    async def call(self, what: Callable[[], Awaitable[T]]) -> T:
        """``await what()`` within the deadline; :class:`RedisUnavailable` when Redis
        cannot answer in time, or at once while an outage is in progress."""
        if self._down_since is not None:
            now = time.monotonic()
            if now < self._next_probe:
                raise RedisUnavailable()
            # This call probes; the others keep failing fast meanwhile.
            self._next_probe = now + self.retry_after
        try:
            async with asyncio.timeout(self.timeout):
                result = await what()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            raise RedisUnavailable() from exc
        if self._down_since is not None:
            self._recovered()
        return result

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._next_probe = now + self.retry_after
        if self._down_since is None:
            self._down_since = now
            self.logger.warning("%s: Redis unreachable (%s: %s); %s until it answers again",
                                self.name, type(exc).__name__, exc, self.fallback)

    def _recovered(self) -> None:
        outage = time.monotonic() - self._down_since
        self._down_since = None
        self.logger.info("%s: Redis reachable again after %.1f s", self.name, outage)
