"""Lesson 46: purging a cached entry with the PURGE method.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/46_cache_purge.py
    curl -i http://127.0.0.1:6196/file            # (3) Cache Miss: Connecting to Upstream...
    curl -i http://127.0.0.1:6196/file            # served from memory, with Age
    curl -i -X PURGE http://127.0.0.1:6196/file   # 200: deleted
    curl -i http://127.0.0.1:6196/file            # (3) Cache Miss again
    curl -i -X PURGE http://127.0.0.1:6196/file   # ... and a purge of what is absent: 404

``is_purge`` says which requests are purges. The engine computes their key exactly
as for a GET (``cache_key_callback``'s default ignores the method), removes the
entry with all its ``Vary`` variants and answers 200, or 404 when nothing was cached
under the key; the request never goes upstream. A purge for a request that does not
use the cache is refused with 405. Purging by tag or by URL prefix is on the
storage (``purge_tag``, ``purge_prefix``).
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.cache import CacheControl, CacheMetaDefaults, MemCache, resp_cacheable

log = logging.getLogger("cache_purge")

UPSTREAM = ("127.0.0.1", 18090)
MEM_CACHE = MemCache(64 * 1024 * 1024)
DEFAULTS = CacheMetaDefaults(lambda status: None)


class PurgeProxy(ProxyHttp):
    def request_cache_filter(self, session, ctx):
        log.info("(1) Setup: Configuring CacheKey for path: '%s'", session.req_header.path)
        session.cache.enable(MEM_CACHE)

    def is_purge(self, session, ctx):
        method = session.req_header.method
        if method == "PURGE":
            log.info("(2) Decision: Method is PURGE. Hijacking request to delete item.")
            return True
        log.info("(2) Decision: Method is %s. Proceeding to Standard Cache Flow.", method)
        return False

    async def upstream_peer(self, session, ctx):
        log.info("(3) Cache Miss: Connecting to Upstream to fetch fresh content...")
        return HttpPeer(UPSTREAM, tls=False, sni="purge.local")

    def response_cache_filter(self, session, resp, ctx):
        log.info("(4) Validation: Examining Upstream Headers for Cache-Control...")
        return resp_cacheable(CacheControl.from_headers(resp.headers), resp, False, DEFAULTS)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, PurgeProxy())
    proxy.add_tcp("127.0.0.1:6196")
    log.info("Purge Proxy running on 127.0.0.1:6196")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
