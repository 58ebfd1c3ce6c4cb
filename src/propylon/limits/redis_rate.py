"""A rate limiter shared by many processes and machines through Redis.

:class:`RedisRate` has :class:`~propylon.limits.Rate`'s interface, made async, but its
windows are different, because several machines must agree on them:

* Windows are **fixed and grid-aligned**: window number ``w = floor(t / interval)``
  where ``t`` is the Redis server's clock (``TIME``) in milliseconds. Every client of
  one Redis therefore flips at the same instant, whatever their own clocks say.
* ``observe(key, n)`` adds ``n`` to the counter of window ``w`` and returns its new
  value: the number of events (summed ``n``) observed for ``key`` by **all** clients
  since window ``w`` began, including ones that were rejected afterwards.
* ``rate(key)`` is the count of window ``w − 1`` (the previous completed window)
  divided by the interval; 0 when nothing was observed in it, so also 0 when two
  intervals or more have passed.
* ``rate_with`` / ``sliding_rate`` work as for ``Rate``, with
  ``current_interval_fraction`` the position inside window ``w``.

Counts are exact (one Redis integer per key and window), not sketched. Each counter
lives in a key ``{prefix}:{key}:{w}`` that expires two intervals plus a second after
it is created, so idle keys disappear without cleanup. Each call is one atomic Lua
script, one round trip. The script derives the window's key from ``KEYS[1]``, so it
needs a single Redis (replicas are fine), not Redis Cluster.

When Redis is unreachable, calls follow ``on_error``: ``"open"`` answers as if
nothing had been counted (``observe`` returns 0, rates are 0) and ``"closed"``
answers :data:`~propylon.limits.UNAVAILABLE_COUNT` (rates are infinite), so the usual
``if count > LIMIT`` check admits or rejects. See :mod:`propylon.limits._redis` for
the logging and timeout behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Callable, Optional, TypeVar

import redis.asyncio as aioredis

from ._redis import UNAVAILABLE_COUNT, OnError, RedisBackend, RedisUnavailable, redis_key
from .rate import PROPORTIONAL_RATE_ESTIMATE_CALC_FN, Interval, RateComponents, interval_seconds

__all__ = ["RedisRate"]

T = TypeVar("T")

# Shared prelude: the server's time in ms and the current window number.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local iv = tonumber(ARGV[1])
local w = math.floor(now / iv)
"""

# KEYS[1] = key base; ARGV = interval ms, n. Returns the count of the current window.
_OBSERVE = _NOW + """
local k = KEYS[1] .. ':' .. w
local c = redis.call('INCRBY', k, ARGV[2])
if c == tonumber(ARGV[2]) then
  redis.call('PEXPIRE', k, 2 * iv + 1000)
end
return c
"""

# KEYS[1] = key base; ARGV = interval ms. Returns {prev, curr, ms into the window}.
_COMPONENTS = _NOW + """
local prev = tonumber(redis.call('GET', KEYS[1] .. ':' .. (w - 1)) or '0')
local curr = tonumber(redis.call('GET', KEYS[1] .. ':' .. w) or '0')
return {prev, curr, now - w * iv}
"""


class RedisRate:
    """Fixed-window event counts per key, shared through Redis. Async.

    Args:
        interval: window length, seconds (float) or ``timedelta``; whole milliseconds.
        client: an existing ``redis.asyncio.Redis`` (not closed by :meth:`aclose`).
        url: where to connect when no client is given; default
            ``redis://127.0.0.1:6379/0``.
        prefix: start of every Redis key. Default ``"propylon:rate"``.
        on_error: ``"open"`` (default) or ``"closed"``, see the module docstring.
        timeout: deadline in seconds for one Redis call. Default 0.25.
        retry_after: seconds between attempts during an outage. Default 1.0.
    """

    def __init__(
        self,
        interval: Interval,
        *,
        client: Optional[aioredis.Redis] = None,
        url: Optional[str] = None,
        prefix: str = "propylon:rate",
        on_error: OnError = "open",
        timeout: float = 0.25,
        retry_after: float = 1.0,
    ) -> None:
        self._interval_ms = max(1, round(interval_seconds(interval) * 1000))
        self.interval = self._interval_ms / 1000
        self._prefix = prefix.encode()
        self._backend = RedisBackend(
            f"RedisRate({prefix})",
            client=client,
            url=url,
            on_error=on_error,
            timeout=timeout,
            retry_after=retry_after,
        )
        self._observe = self._backend.script(_OBSERVE)
        self._components = self._backend.script(_COMPONENTS)

    @property
    def on_error(self) -> OnError:
        """The outage policy, ``"open"`` or ``"closed"``."""
        return self._backend.on_error

    @property
    def available(self) -> bool:
        """False while Redis is considered unreachable."""
        return self._backend.available

    async def observe(self, key: Hashable, n: int = 1) -> int:
        """Add ``n`` events for ``key``; return the key's count in the current window."""
        try:
            return int(
                await self._backend.run(self._observe, (redis_key(self._prefix, key),), (self._interval_ms, n))
            )
        except RedisUnavailable:
            return 0 if self._backend.on_error == "open" else UNAVAILABLE_COUNT

    async def rate(self, key: Hashable) -> float:
        """Events per second for ``key`` in the previous completed window.

        While Redis is down: 0.0 (open) or ``math.inf`` (closed).
        """
        components = await self._fetch(key)
        if components is None:
            return self._unavailable_rate()
        return components.prev_samples / components.interval

    async def rate_with(self, key: Hashable, fn: Callable[[RateComponents], T]) -> T:
        """Call ``fn`` with the key's :class:`RateComponents` from Redis.

        While Redis is down ``fn`` gets zero samples (open) or
        :data:`~propylon.limits.UNAVAILABLE_COUNT` for both (closed), and a fraction of 0.
        """
        components = await self._fetch(key)
        if components is None:
            samples = 0 if self._backend.on_error == "open" else UNAVAILABLE_COUNT
            components = RateComponents(samples, samples, self.interval, 0.0)
        return fn(components)

    async def sliding_rate(self, key: Hashable) -> float:
        """Smoothed events per second (:data:`PROPORTIONAL_RATE_ESTIMATE_CALC_FN`).

        While Redis is down: 0.0 (open) or ``math.inf`` (closed).
        """
        components = await self._fetch(key)
        if components is None:
            return self._unavailable_rate()
        return PROPORTIONAL_RATE_ESTIMATE_CALC_FN(components)

    async def _fetch(self, key: Hashable) -> Optional[RateComponents]:
        try:
            prev, curr, into = await self._backend.run(
                self._components, (redis_key(self._prefix, key),), (self._interval_ms,)
            )
        except RedisUnavailable:
            return None
        return RateComponents(int(prev), int(curr), self.interval, int(into) / self._interval_ms)

    def _unavailable_rate(self) -> float:
        return 0.0 if self._backend.on_error == "open" else math.inf

    async def aclose(self) -> None:
        """Close the Redis client if this limiter created it."""
        await self._backend.aclose()

    def __repr__(self) -> str:
        return f"RedisRate(interval={self.interval}, prefix={self._prefix.decode()!r})"
