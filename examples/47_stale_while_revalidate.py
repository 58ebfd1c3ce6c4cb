"""Lesson 47: stale-while-revalidate: an expired entry is served at once while one
background request fetches the new version.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/47_stale_while_revalidate.py
    curl http://127.0.0.1:6198/swr     # ~2 s: Content Version 1      (MISS (Fetching) - Slow Response)
    curl http://127.0.0.1:6198/swr     # instant: Content Version 1   (HIT (Fresh) - Instant Response)
    sleep 7; curl http://127.0.0.1:6198/swr   # instant, stale: Version 1 (SWR ACTIVATED ...)
    sleep 3; curl http://127.0.0.1:6198/swr   # instant: Content Version 2 (HIT (Fresh))

The lab's ``/swr`` answers after 2 s with ``max-age=5, stale-while-revalidate=10``.
Between 5 and 15 s after the fetch the entry is stale but may be served while it is
revalidated, if ``should_serve_stale`` allows it for ``error=None`` (the default
allows stale copies only when the upstream fails). The request that takes the cache
lock starts one background refresh holding the lock and is itself served the stale
copy; requests meanwhile get the stale copy too, so nobody waits for the upstream.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.cache import CacheControl, CacheLock, CacheMetaDefaults, CachePhase, MemCache, resp_cacheable

log = logging.getLogger("stale_while_revalidate")

UPSTREAM = ("127.0.0.1", 18090)
MEM_CACHE = MemCache(64 * 1024 * 1024)
CACHE_LOCK = CacheLock(age_timeout=5.0, stats=MEM_CACHE.stats)
# Fresh 5 s and a 10 s stale-while-revalidate window when the origin gives none.
DEFAULTS = CacheMetaDefaults(lambda status: 5 if status == 200 else None, 10, 0)


class SWRProxy(ProxyHttp):
    def request_cache_filter(self, session, ctx):
        session.cache.enable(MEM_CACHE, lock=CACHE_LOCK)

    async def upstream_peer(self, session, ctx):
        return HttpPeer(UPSTREAM, tls=False, sni="swr.local")

    def response_cache_filter(self, session, resp, ctx):
        return resp_cacheable(CacheControl.from_headers(resp.headers), resp, False, DEFAULTS)

    def should_serve_stale(self, session, ctx, error):
        # None: revalidating an entry in its SWR window → serve it stale meanwhile.
        return error is None

    async def logging(self, session, e, ctx):
        phase = session.cache.phase()
        if phase is CachePhase.HIT:
            log.info("Status: HIT (Fresh) - Instant Response")
        elif phase is CachePhase.MISS:
            log.info("Status: MISS (Fetching) - Slow Response")
        elif phase in (CachePhase.STALE, CachePhase.STALE_UPDATING):
            log.info("Status: SWR ACTIVATED (Serving Stale while Updating)")
        elif phase is CachePhase.EXPIRED:
            log.info("Status: EXPIRED (Too Old) - Blocking Fetch")
        else:
            log.info("Status: %s", phase.name)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, SWRProxy())
    proxy.add_tcp("127.0.0.1:6198")
    log.info("SWR Proxy running on 127.0.0.1:6198")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
