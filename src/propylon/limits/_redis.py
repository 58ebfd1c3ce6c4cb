"""Plumbing shared by the Redis-backed limiters: client, timeouts, outage policy.

A limiter must answer on every request, Redis or not. :class:`RedisBackend` runs a
Lua script with a hard deadline and, when Redis cannot answer, tells the caller to
apply the configured policy instead; the deadline and the outage bookkeeping (one
warning per outage, fail fast between probes) are :class:`propylon.redis_outage.RedisGuard`'s.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Hashable, Sequence
from typing import Any, Literal, Optional

import redis.asyncio as aioredis

from ..redis_outage import RedisGuard, RedisUnavailable, redis_client

__all__ = ["RedisBackend", "RedisUnavailable", "OnError", "UNAVAILABLE_COUNT", "redis_key"]

logger = logging.getLogger("propylon.limits")

OnError = Literal["open", "closed"]

UNAVAILABLE_COUNT: int = sys.maxsize
"""The count a fail-closed limiter reports while Redis is unreachable.

It is larger than any limit, so ``if count > LIMIT: reject`` rejects.
"""

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_key(prefix: bytes, key: Hashable) -> bytes:
    """The Redis key for a limiter key: ``prefix:key``.

    ``str`` is UTF-8 encoded, ``bytes`` kept, anything else goes through ``str()``; so
    ``1``, ``"1"`` and ``b"1"`` name the same counter.
    """
    if isinstance(key, bytes):
        raw = key
    elif isinstance(key, str):
        raw = key.encode()
    else:
        raw = str(key).encode()
    return prefix + b":" + raw


class RedisBackend:
    """A Redis client plus deadline and outage bookkeeping for one limiter.

    Args:
        name: how log lines name the limiter.
        client: an existing ``redis.asyncio.Redis``; it is not closed by :meth:`aclose`.
        url: used when ``client`` is None; the client built from it has no retries and
            ``timeout``-second socket timeouts. Default ``redis://127.0.0.1:6379/0``.
        on_error: ``"open"`` or ``"closed"``, validated here.
        timeout: deadline in seconds for one call to Redis. Default 0.25.
        retry_after: seconds to answer from the policy after a failure before asking
            Redis again. Default 1.0.
    """

    def __init__(
        self,
        name: str,
        *,
        client: Optional[aioredis.Redis] = None,
        url: Optional[str] = None,
        on_error: OnError = "open",
        timeout: float = 0.25,
        retry_after: float = 1.0,
    ) -> None:
        if on_error not in ("open", "closed"):
            raise ValueError(f"on_error must be 'open' or 'closed', got {on_error!r}")
        self.name = name
        self.on_error: OnError = on_error
        self.timeout = timeout
        self.retry_after = retry_after
        outcome = "admitting" if on_error == "open" else "rejecting"
        self._guard = RedisGuard(name, f"{outcome} requests", logger, timeout=timeout, retry_after=retry_after)
        self._owns_client = client is None
        self.client = client if client is not None else redis_client(url or DEFAULT_URL, timeout)

    @property
    def available(self) -> bool:
        """False while an outage is in progress (since the last failed call)."""
        return self._guard.available

    def script(self, source: str) -> Any:
        """Register a Lua script on this client (loaded lazily, run by SHA)."""
        return self.client.register_script(source)

    async def run(self, script: Any, keys: Sequence[bytes], args: Sequence[Any]) -> Any:
        """Run ``script``; raise :class:`RedisUnavailable` if Redis cannot answer in time."""
        return await self._guard.call(lambda: script(keys=keys, args=args))

    async def aclose(self) -> None:
        """Close the client if this backend created it."""
        if self._owns_client:
            await self.client.aclose()
