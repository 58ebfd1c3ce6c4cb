"""Lesson 43: an in-memory cache in front of the upstream.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/43_memory_cache.py
    curl http://127.0.0.1:6190/     # log: Cache Status: MISS (Fetched from Upstream)
    curl http://127.0.0.1:6190/     # log: Cache Status: HIT (Served from Memory); the upstream is not contacted
    sleep 60; curl http://127.0.0.1:6190/   # log: Cache Status: EXPIRED (Revalidating)

Caching is opt-in per request: ``request_cache_filter`` enables it with a storage
(here a process-wide :class:`~propylon.cache.MemCache`, bounded in bytes) and
``response_cache_filter`` decides whether a response is kept and for how long. As
in the lesson, this proxy keeps every 200 for 60 seconds whatever the upstream says
(the lab's ``/`` announces only ``max-age=10``), so the freshness comes from
:class:`~propylon.cache.CacheMetaDefaults`. ``PROPYLON_CACHE_TTL`` shortens the 60
seconds (the tests use it; leave it unset to follow the lesson).

The cache key is ``cache_key_callback``'s default: the Host and the request target.
The upstream numbers its answers (``#N``): a hit repeats the number it cached.
"""

import logging
import os

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.cache import CacheMetaDefaults, CachePhase, MemCache, resp_cacheable

log = logging.getLogger("memory_cache")

UPSTREAM = ("127.0.0.1", 18090)  # the lab's advanced upstream (the seed's local mock)
TTL = int(os.environ.get("PROPYLON_CACHE_TTL", "60"))

MEM_CACHE = MemCache(64 * 1024 * 1024)
DEFAULTS = CacheMetaDefaults(lambda status: TTL if status == 200 else None)


class CacheProxy(ProxyHttp):
    def request_cache_filter(self, session, ctx):
        session.cache.enable(MEM_CACHE)

    async def upstream_peer(self, session, ctx):
        return HttpPeer(UPSTREAM, tls=False, sni="cache.local")

    def response_cache_filter(self, session, resp, ctx):
        # No Cache-Control given: the defaults decide (200 → TTL seconds), as the
        # lesson forces one lifetime for everything.
        return resp_cacheable(None, resp, False, DEFAULTS)

    async def logging(self, session, e, ctx):
        phase = session.cache.phase()
        if phase is CachePhase.HIT:
            log.info("Cache Status: HIT (Served from Memory)")
        elif phase is CachePhase.MISS:
            log.info("Cache Status: MISS (Fetched from Upstream)")
        elif phase is CachePhase.EXPIRED:
            log.info("Cache Status: EXPIRED (Revalidating)")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, CacheProxy())
    proxy.add_tcp("127.0.0.1:6190")
    log.info("Memory Cache Proxy running on 127.0.0.1:6190")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
