"""Lesson 36, shared: one rate limit for every proxy process, counted in Redis.

    redis-server --port 6379 --bind 127.0.0.1 &
    python -m propylon.lab &
    REDIS_URL=redis://127.0.0.1:6379/0 LISTEN=127.0.0.1:6180 python examples/36_redis_rate_limit.py &
    REDIS_URL=redis://127.0.0.1:6379/0 LISTEN=127.0.0.1:6189 python examples/36_redis_rate_limit.py &
    for p in 6180 6189 6180 6189; do curl -s -o /dev/null -w "%{http_code}\\n" http://127.0.0.1:$p/; done

The per-process ``Rate`` of ``36_basic_rate_limit.py`` lets each instance admit its
own quota: two instances behind a load balancer admit twice the limit. Here every
instance counts in the same Redis key, so together they admit at most
``MAX_REQ_PER_WINDOW`` requests per client IP per one-second window.

:class:`~propylon.limits.RedisRate` windows are aligned to the Redis server's clock
(window ``floor(redis_time_ms / 1000)``), so all instances flip at the same instant
whatever their own clocks say; each ``observe`` is one atomic script. If Redis is
unreachable the limiter fails open (admits) and logs it; pass ``on_error="closed"``
to refuse instead.

Environment: ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), ``LISTEN``
(default ``127.0.0.1:6180``).
"""

import logging
import os

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.limits import RedisRate

log = logging.getLogger("redis_rate_limit")

BLUE = ("127.0.0.1", 18080)
MAX_REQ_PER_WINDOW = 10
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
LISTEN = os.environ.get("LISTEN", "127.0.0.1:6180")


class SharedRateLimiterProxy(ProxyHttp):
    def __init__(self, limiter: RedisRate) -> None:
        self.limiter = limiter

    async def request_filter(self, session, ctx):
        client_ip = session.client_ip
        if client_ip is None:
            return False
        count = await self.limiter.observe(client_ip, 1)
        if count > MAX_REQ_PER_WINDOW:
            log.warning("Rate Limit Exceeded for %s: %d in this window (all instances)", client_ip, count)
            await session.respond_error(429)
            return True
        log.info("Admitted %s: %d/%d in this window", client_ip, count, MAX_REQ_PER_WINDOW)
        return False

    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="rate-limited.cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    # The client connects lazily, on the first request, inside the worker's event loop.
    # A generous deadline: a call that times out is answered by the fail-open policy.
    limiter = RedisRate(1.0, url=REDIS_URL, prefix="lesson36:rate", timeout=1.0)
    proxy = http_proxy_service(server.configuration, SharedRateLimiterProxy(limiter))
    proxy.add_tcp(LISTEN)
    log.info("Shared Rate Limiter running on %s, counting in %s", LISTEN, REDIS_URL)
    log.info("Limit: %d requests per second per IP, across all instances", MAX_REQ_PER_WINDOW)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
