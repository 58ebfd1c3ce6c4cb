"""Lesson 45: the cache lock coalesces concurrent misses into one upstream request.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/45_cache_lock.py
    for i in 1 2 3 4 5; do curl -s http://127.0.0.1:6194/resource & done; wait

The lab's ``/resource`` takes 2 s to answer. With a :class:`~propylon.cache.CacheLock`
the first request takes the key's write lock and goes upstream (``MISS (WRITER)``,
waited 0); the others find the lock taken and wait for it; once the writer's
response head is admitted they stream its body from the cache as it arrives
(``HIT (READER)``, waited about 2 s). The upstream sees exactly one request (its
``X-Lab-Fetch`` stays 1). A writer that hangs holds the others back at most for the
lock's ``age_timeout`` (5 s here); then they go upstream themselves.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.cache import CacheControl, CacheLock, CacheMetaDefaults, CachePhase, MemCache, resp_cacheable

log = logging.getLogger("cache_lock")

UPSTREAM = ("127.0.0.1", 18090)
MEM_CACHE = MemCache(64 * 1024 * 1024)
CACHE_LOCK = CacheLock(age_timeout=5.0, stats=MEM_CACHE.stats)
DEFAULTS = CacheMetaDefaults(lambda status: 60 if status == 200 else None)


class CacheLockProxy(ProxyHttp):
    def request_cache_filter(self, session, ctx):
        session.cache.enable(MEM_CACHE, lock=CACHE_LOCK)

    async def upstream_peer(self, session, ctx):
        return HttpPeer(UPSTREAM, tls=False, sni="heavy.local")

    def response_cache_filter(self, session, resp, ctx):
        return resp_cacheable(CacheControl.from_headers(resp.headers), resp, False, DEFAULTS)

    async def logging(self, session, e, ctx):
        waited = session.cache.lock_duration()
        phase = session.cache.phase()
        if phase is CachePhase.MISS:
            status = "MISS (WRITER)"
        elif phase is CachePhase.HIT:
            status = "HIT (READER)" if waited is not None else "HIT"
        else:
            status = phase.name
        log.info("Client Finished. Status: %s. Waited for lock: %.2fs", status, waited or 0.0)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, CacheLockProxy())
    proxy.add_tcp("127.0.0.1:6194")
    log.info("Cache Lock Proxy running on 127.0.0.1:6194")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
