"""Limits shared through Redis by every worker and instance of a gateway."""

from __future__ import annotations

from ...limits import RedisRate
from ..config import models as m
from .builtin import RateLimit
from .respond import reject

__all__ = ["RedisRateLimit"]


class RedisRateLimit(RateLimit):
    """``rate_limit`` with ``redis``: one count per key for all processes using that Redis.

    Counts live under ``propylon:gateway:rate:<route>`` in fixed windows on Redis's
    clock (:class:`~propylon.limits.RedisRate`), so instances agree on when a window
    starts. An outage follows ``on_redis_error``: one warning when it starts, one line
    when Redis answers again, and no request waits for Redis meanwhile.
    """

    def __init__(self, conf: m.RateLimitPlugin, route_name: str) -> None:
        super().__init__(conf, route_name)
        self.rate = RedisRate(conf.window, url=conf.redis, prefix=f"propylon:gateway:rate:{route_name}",
                              on_error=conf.on_redis_error)

    async def request_filter(self, session, ctx) -> bool:
        if await self.rate.observe(self.key(session, ctx), 1) <= self.limit:
            return False
        await reject(session, 429, self.retry_after)
        return True
