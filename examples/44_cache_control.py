"""Lesson 44: the origin's Cache-Control decides what is cached and for how long.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/44_cache_control.py
    curl http://127.0.0.1:6192/no_store    # twice: log Path /no_store, Status: SKIP (Uncacheable)
    curl http://127.0.0.1:6192/short       # MISS, at once again: HIT, after 6 s: EXPIRED (max-age=5)
    curl http://127.0.0.1:6192/long        # MISS, after 6 s still HIT (max-age=60)

``resp_cacheable`` applies RFC 9111 to the upstream's head: ``no-store`` and
``private`` are never stored, ``s-maxage`` wins over ``max-age``, a bare
``no-cache`` is stored but always revalidated, and with no lifetime at all (these
defaults give none) nothing is stored. The lab's advanced upstream serves
``/short`` (max-age=5), ``/long`` (max-age=60) and ``/no_store``.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.cache import CacheControl, CacheMetaDefaults, CachePhase, MemCache, resp_cacheable

log = logging.getLogger("cache_control")

UPSTREAM = ("127.0.0.1", 18090)
MEM_CACHE = MemCache(64 * 1024 * 1024)
DEFAULTS = CacheMetaDefaults(lambda status: None)  # nothing cached unless the headers say so


class CacheControlProxy(ProxyHttp):
    def request_cache_filter(self, session, ctx):
        session.cache.enable(MEM_CACHE)

    async def upstream_peer(self, session, ctx):
        return HttpPeer(UPSTREAM, tls=False, sni="header.test.local")

    def response_cache_filter(self, session, resp, ctx):
        cc = CacheControl.from_headers(resp.headers)
        return resp_cacheable(cc, resp, False, DEFAULTS)

    async def logging(self, session, e, ctx):
        path = session.req_header.path
        phase = session.cache.phase()
        if phase is CachePhase.HIT:
            log.info("Path %s, Status: HIT", path)
        elif phase is CachePhase.MISS:
            log.info("Path %s, Status: MISS", path)
        elif phase is CachePhase.EXPIRED:
            log.info("Path %s, Status: EXPIRED", path)
        elif phase is CachePhase.DISABLED:
            log.info("Path %s, Status: SKIP (Uncacheable)", path)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, CacheControlProxy())
    proxy.add_tcp("127.0.0.1:6192")
    log.info("Cache Control Proxy running on 127.0.0.1:6192")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
