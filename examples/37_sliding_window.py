"""Lesson 37: rate limit on the previous window's rate – at most 5.0 requests/s per IP.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/37_sliding_window.py
    for i in $(seq 15); do curl -s -o /dev/null -w "%{http_code}\\n" http://127.0.0.1:6181/; sleep 0.20; done
    # 15 × 200: one request every 0.2 s never puts more than 5 in one window
    for i in $(seq 15); do curl -s -o /dev/null -w "%{http_code}\\n" http://127.0.0.1:6181/; sleep 0.15; done
    # the first window passes (about 7), then 429: that window's rate was ~7/s

Every request is counted with ``observe`` (the writer); the decision reads
``rate`` (the reader), which, as in Pingora, is the count of the previous completed
one-second window divided by its length. So the first second is let through whatever
its pace, and from then on a client is judged on its last full second: one that
keeps over 5 req/s stays blocked (its rejected requests count too), one that slows
down gets in again a window later. Windows open lazily, with the first request at
least a second after the last flip, so a steady 5 req/s cannot squeeze a sixth
request into one window.

``Rate.sliding_rate`` gives the interpolated estimate
``(prev × (1 − elapsed fraction) + curr) / interval`` instead; it reacts within the
window, but at exactly 5 req/s it reads above 5 right after each flip, which would
reject the steady client of the first loop.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.limits import Rate

log = logging.getLogger("sliding_window")

BLUE = ("127.0.0.1", 18080)
MAX_REQ_PER_SEC = 5.0

RATE_LIMITER = Rate(1.0)


class SlidingWindowProxy(ProxyHttp):
    async def request_filter(self, session, ctx):
        client_ip = session.client_ip
        if client_ip is None:
            log.warning("Could not determine client IP, allowing request.")
            return False
        RATE_LIMITER.observe(client_ip, 1)  # record first, so every attempt counts
        current_rate = RATE_LIMITER.rate(client_ip)
        if current_rate > MAX_REQ_PER_SEC:
            log.warning("Rate Limit Exceeded for %s: %.2f req/s (Limit: %.1f)",
                        client_ip, current_rate, MAX_REQ_PER_SEC)
            await session.respond_error(429)
            return True
        return False

    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="sliding-window.cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, SlidingWindowProxy())
    proxy.add_tcp("127.0.0.1:6181")
    log.info("Sliding Window Rate Limiter running on 127.0.0.1:6181")
    log.info("Limit: %.1f requests per second (previous window)", MAX_REQ_PER_SEC)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
