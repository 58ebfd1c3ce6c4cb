"""Plumbing shared by the Redis-backed limiters: client, timeouts, outage policy.

A limiter must answer on every request, Redis or not. :class:`RedisBackend` runs a
Lua script with a hard deadline and, when Redis cannot answer, tells the caller to
apply the configured policy instead:

* it logs **one** warning when an outage starts and one info line when Redis answers
  again, however many calls fail in between;
* during an outage it stops asking Redis for ``retry_after`` seconds, so calls return
  the policy's answer at once instead of each waiting for a timeout; after that one
  call probes Redis while the others keep using the policy.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Hashable, Sequence
from typing import Any, Literal, Optional

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = ["RedisBackend", "RedisUnavailable", "OnError", "UNAVAILABLE_COUNT", "redis_key"]

logger = logging.getLogger("propylon.limits")

OnError = Literal["open", "closed"]

UNAVAILABLE_COUNT: int = sys.maxsize
"""The count a fail-closed limiter reports while Redis is unreachable.

It is larger than any limit, so ``if count > LIMIT: reject`` rejects.
"""

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisUnavailable(Exception):
    """Redis did not answer; the caller applies its ``on_error`` policy."""


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
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.name = name
        self.on_error: OnError = on_error
        self.timeout = timeout
        self.retry_after = retry_after
        self._owns_client = client is None
        if client is None:
            client = aioredis.Redis.from_url(
                url or DEFAULT_URL,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
        self.client = client
        self._down_since: Optional[float] = None
        self._next_probe = 0.0

    @property
    def available(self) -> bool:
        """False while an outage is in progress (since the last failed call)."""
        return self._down_since is None

    def script(self, source: str) -> Any:
        """Register a Lua script on this client (loaded lazily, run by SHA)."""
        return self.client.register_script(source)

    async def run(self, script: Any, keys: Sequence[bytes], args: Sequence[Any]) -> Any:
        """Run ``script``; raise :class:`RedisUnavailable` if Redis cannot answer in time."""
        if self._down_since is not None:
            now = time.monotonic()
            if now < self._next_probe:
                raise RedisUnavailable()
            # This call probes; the others keep using the policy meanwhile.
            self._next_probe = now + self.retry_after
        try:
            async with asyncio.timeout(self.timeout):
                result = await script(keys=keys, args=args)
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
            outcome = "admitting" if self.on_error == "open" else "rejecting"
            logger.warning(
                "%s: Redis unreachable (%s: %s); %s requests until it answers again",
                self.name,
                type(exc).__name__,
                exc,
                outcome,
            )

    def _recovered(self) -> None:
        assert self._down_since is not None
        outage = time.monotonic() - self._down_since
        self._down_since = None
        logger.info("%s: Redis reachable again after %.1f s", self.name, outage)

    async def aclose(self) -> None:
        """Close the client if this backend created it."""
        if self._owns_client:
            await self.client.aclose()
