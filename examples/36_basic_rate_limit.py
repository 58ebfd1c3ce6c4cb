"""Lesson 36: fixed-window rate limit – at most 5 requests per second per client IP.

    python -m propylon.lab &                    # the lab upstreams
    PROPYLON_LOG=info python examples/36_basic_rate_limit.py
    for i in $(seq 10); do curl -s -o /dev/null -w "%{http_code}\\n" http://127.0.0.1:6180/; done
    # 200 ×5, then 429 ×5

``request_filter`` runs before an upstream is chosen, so a rejected request never
reaches ``upstream_peer`` (no "Selected upstream" line) nor blue. ``Rate.observe``
counts the request in the current one-second window and returns the window's total
so far, rejected requests included. Windows start lazily: the first request after a
second has passed opens a new one. The limiter lives in this process; for a limit
shared by several processes see ``36_redis_rate_limit.py``.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.limits import Rate

log = logging.getLogger("basic_rate_limit")

BLUE = ("127.0.0.1", 18080)
MAX_REQ_PER_SEC = 5

# One limiter for the whole process, shared by every request (and every connection).
RATE_LIMITER = Rate(1.0)


class RateLimiterProxy(ProxyHttp):
    async def request_filter(self, session, ctx):
        client_ip = session.client_ip
        if client_ip is None:  # a Unix-socket client has no IP to count
            log.warning("Could not determine client IP, allowing request.")
            return False
        count = RATE_LIMITER.observe(client_ip, 1)
        if count > MAX_REQ_PER_SEC:
            log.warning("Rate Limit Exceeded for %s: %d req/s", client_ip, count)
            await session.respond_error(429)
            return True  # answered: the request stops here
        return False

    async def upstream_peer(self, session, ctx):
        log.info("Selected upstream: %s:%d", *BLUE)
        return HttpPeer(BLUE, tls=False, sni="rate-limited.cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, RateLimiterProxy())
    proxy.add_tcp("127.0.0.1:6180")
    log.info("Rate Limiter Proxy running on 127.0.0.1:6180")
    log.info("Limit: %d requests per second per IP", MAX_REQ_PER_SEC)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
