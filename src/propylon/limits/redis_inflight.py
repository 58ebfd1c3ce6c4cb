"""In-flight counts shared by many processes and machines through Redis.

:class:`RedisInflight` has :class:`~propylon.limits.Inflight`'s interface, made async:
``guard, count = await limiter.incr(key, n)`` and ``await guard.release()`` (or
``async with guard:``). The count is the sum of ``n`` over every guard held on
``key`` by any client of the same Redis.

A process can die while holding guards, and nothing would ever release them. So each
guard is a **lease**: Redis records it under a random token with a deadline ``lease``
seconds ahead (of the Redis server's clock), and every call on the key first gives
back the leases whose deadline has passed. A request that legitimately runs longer
than ``lease`` should call ``await guard.extend()`` now and then; otherwise it stops
being counted at its deadline. Release is idempotent and safe after the lease ran out.

Redis keys, per limiter key: ``{prefix}:{key}`` (a hash: the total under ``#`` and one
field per lease token) and ``{prefix}:{key}:leases`` (a sorted set of deadlines). Both
expire ``lease`` plus one second after the last call that took something, and are
deleted when the count returns to zero. Every call is one atomic Lua script.

While Redis is unreachable, ``incr`` follows ``on_error``: ``"open"`` returns a count
of 0 and ``"closed"`` returns :data:`~propylon.limits.UNAVAILABLE_COUNT`; either way
the guard it returns holds nothing in Redis, and releasing it is a no-op. A release
that fails during an outage is left to the lease to reclaim.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Hashable
from types import TracebackType
from typing import Optional

import redis.asyncio as aioredis

from ._redis import UNAVAILABLE_COUNT, OnError, RedisBackend, RedisUnavailable, redis_key

__all__ = ["RedisInflight", "RedisGuard"]

# KEYS[1] = hash, KEYS[2] = lease set. Leaves `now` (server ms) defined and the
# expired leases (at most 128 per call, to bound the script's run time) given back.
_RECLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 128)
for _, token in ipairs(expired) do
  local w = redis.call('HGET', KEYS[1], token)
  if w then
    redis.call('HINCRBY', KEYS[1], '#', -tonumber(w))
    redis.call('HDEL', KEYS[1], token)
  end
  redis.call('ZREM', KEYS[2], token)
end
"""

# ARGV = token ('' for an unleased increment), n, lease ms. Returns the new count.
_INCR = _RECLAIM + """
local n = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local c = redis.call('HINCRBY', KEYS[1], '#', n)
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], n)
  redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], lease + 1000)
end
redis.call('PEXPIRE', KEYS[1], lease + 1000)
return c
"""

# ARGV = token. Returns the count after giving the lease back (if it was still held).
_RELEASE = _RECLAIM + """
local w = redis.call('HGET', KEYS[1], ARGV[1])
local c
if w then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  c = redis.call('HINCRBY', KEYS[1], '#', -tonumber(w))
else
  c = tonumber(redis.call('HGET', KEYS[1], '#') or '0')
end
if c <= 0 and redis.call('HLEN', KEYS[1]) <= 1 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
return c
"""

# ARGV = token, lease ms. Returns 1 if the lease was still held and is now extended.
_EXTEND = _RECLAIM + """
local lease = tonumber(ARGV[2])
if redis.call('ZADD', KEYS[2], 'XX', 'CH', now + lease, ARGV[1]) == 0 then
  return 0
end
redis.call('PEXPIRE', KEYS[1], lease + 1000)
redis.call('PEXPIRE', KEYS[2], lease + 1000)
return 1
"""

_GET = _RECLAIM + """
return tonumber(redis.call('HGET', KEYS[1], '#') or '0')
"""


class RedisInflight:
    """In-flight counts per key, shared through Redis, with leased guards. Async.

    Args:
        client: an existing ``redis.asyncio.Redis`` (not closed by :meth:`aclose`).
        url: where to connect when no client is given; default
            ``redis://127.0.0.1:6379/0``.
        prefix: start of every Redis key. Default ``"propylon:inflight"``.
        lease: seconds a guard counts without :meth:`RedisGuard.extend`. Default 60.
        on_error: ``"open"`` (default) or ``"closed"``, see the module docstring.
        timeout: deadline in seconds for one Redis call. Default 0.25.
        retry_after: seconds between attempts during an outage. Default 1.0.
    """

    def __init__(
        self,
        *,
        client: Optional[aioredis.Redis] = None,
        url: Optional[str] = None,
        prefix: str = "propylon:inflight",
        lease: float = 60.0,
        on_error: OnError = "open",
        timeout: float = 0.25,
        retry_after: float = 1.0,
    ) -> None:
        if not lease > 0:
            raise ValueError(f"lease must be positive, got {lease!r}")
        self.lease = lease
        self._lease_ms = max(1, round(lease * 1000))
        self._prefix = prefix.encode()
        self._backend = RedisBackend(
            f"RedisInflight({prefix})",
            client=client,
            url=url,
            on_error=on_error,
            timeout=timeout,
            retry_after=retry_after,
        )
        self._incr = self._backend.script(_INCR)
        self._release = self._backend.script(_RELEASE)
        self._extend = self._backend.script(_EXTEND)
        self._get = self._backend.script(_GET)

    @property
    def on_error(self) -> OnError:
        """The outage policy, ``"open"`` or ``"closed"``."""
        return self._backend.on_error

    @property
    def available(self) -> bool:
        """False while Redis is considered unreachable."""
        return self._backend.available

    def _keys(self, key: Hashable) -> tuple[bytes, bytes]:
        base = redis_key(self._prefix, key)
        return base, base + b":leases"

    async def incr(self, key: Hashable, n: int = 1) -> tuple["RedisGuard", int]:
        """Take ``n`` for ``key``; return ``(guard, count including n)``."""
        keys = self._keys(key)
        token = secrets.token_hex(12)
        try:
            count = int(await self._backend.run(self._incr, keys, (token, n, self._lease_ms)))
        except RedisUnavailable:
            count = 0 if self._backend.on_error == "open" else UNAVAILABLE_COUNT
            return RedisGuard(self, keys, None, n), count
        return RedisGuard(self, keys, token, n), count

    async def try_incr(self, key: Hashable, limit: int, n: int = 1) -> Optional["RedisGuard"]:
        """Take ``n`` if the shared count stays at or below ``limit``; else ``None``."""
        guard, count = await self.incr(key, n)
        if count > limit:
            await guard.release()
            return None
        return guard

    async def get(self, key: Hashable) -> int:
        """The shared count for ``key``; during an outage 0 (open) or UNAVAILABLE_COUNT."""
        try:
            return int(await self._backend.run(self._get, self._keys(key), ()))
        except RedisUnavailable:
            return 0 if self._backend.on_error == "open" else UNAVAILABLE_COUNT

    async def aclose(self) -> None:
        """Close the Redis client if this limiter created it."""
        await self._backend.aclose()

    def __repr__(self) -> str:
        return f"RedisInflight(prefix={self._prefix.decode()!r}, lease={self.lease})"


class RedisGuard:
    """A leased claim of ``value`` on one key of a :class:`RedisInflight`.

    ``await release()`` gives it back exactly once (idempotent; also on ``async with``
    exit, exceptions and cancellation included). ``await incr()`` adds ``value`` again
    without a lease, **not** undone by release (Pingora's semantics); that extra count
    goes away only with the key's expiry. A guard returned during an outage holds
    nothing (``token`` is None) and its methods do not touch Redis.
    """

    __slots__ = ("_limiter", "_keys", "token", "value", "_released")

    def __init__(self, limiter: RedisInflight, keys: tuple[bytes, bytes], token: Optional[str], value: int) -> None:
        self._limiter = limiter
        self._keys = keys
        self.token = token
        self.value = value
        self._released = False

    @property
    def released(self) -> bool:
        """Whether :meth:`release` has been called."""
        return self._released

    async def release(self) -> None:
        """Give the lease back. Idempotent; never raises because Redis is down."""
        if self._released:
            return
        self._released = True
        if self.token is None:
            return
        # Shielded, so that cancelling the caller does not abandon the release half-way.
        await asyncio.shield(self._send_release())

    async def _send_release(self) -> None:
        limiter = self._limiter
        try:
            await limiter._backend.run(limiter._release, self._keys, (self.token,))
        except RedisUnavailable:
            pass  # the lease deadline gives it back

    async def extend(self) -> bool:
        """Push the lease deadline ``lease`` seconds ahead; False if it was not held."""
        if self._released or self.token is None:
            return False
        limiter = self._limiter
        try:
            return bool(await limiter._backend.run(limiter._extend, self._keys, (self.token, limiter._lease_ms)))
        except RedisUnavailable:
            return False

    async def incr(self) -> int:
        """Add ``value`` once more, unleased; return the count (policy count if down)."""
        limiter = self._limiter
        if self.token is None:
            return 0 if limiter.on_error == "open" else UNAVAILABLE_COUNT
        try:
            return int(await limiter._backend.run(limiter._incr, self._keys, ("", self.value, limiter._lease_ms)))
        except RedisUnavailable:
            return 0 if limiter.on_error == "open" else UNAVAILABLE_COUNT

    async def __aenter__(self) -> "RedisGuard":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"RedisGuard(token={self.token!r}, value={self.value}, {state})"
