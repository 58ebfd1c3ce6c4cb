"""A caching proxy in a process of its own, for tests across restarts and processes.

    python tests/proxy/run_caching_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT STORAGE

STORAGE is ``redis:URL`` (RedisCache), ``disk:DIR`` (DiskCache) or ``mem``. Every
GET/HEAD uses the cache, ``PURGE`` purges, responses are stored as their
Cache-Control allows; each request logs ``cache: <PHASE> <path>``.
"""

import logging
import sys

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.cache import CacheControl, CacheMetaDefaults, DiskCache, MemCache, RedisCache, resp_cacheable

log = logging.getLogger("caching_proxy")
DEFAULTS = CacheMetaDefaults(lambda status: None)


def storage_from(spec: str):
    kind, _, arg = spec.partition(":")
    if kind == "redis":
        return RedisCache(arg)
    if kind == "disk":
        return DiskCache(arg, 64 * 1024 * 1024)
    return MemCache(64 * 1024 * 1024)


class CachingProxy(ProxyHttp):
    def __init__(self, addr: str, storage) -> None:
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.storage = storage

    def request_cache_filter(self, session, ctx):
        session.cache.enable(self.storage)

    def is_purge(self, session, ctx):
        return session.req_header.method == "PURGE"

    def response_cache_filter(self, session, resp, ctx):
        return resp_cacheable(CacheControl.from_headers(resp.headers), resp, False, DEFAULTS)

    async def upstream_peer(self, session, ctx):
        return HttpPeer(self.addr, False, "")

    async def logging(self, session, e, ctx):
        log.info("cache: %s %s", session.cache.phase().name, session.req_header.path)


def main() -> None:
    listen, upstream, spec = sys.argv[1], sys.argv[2], sys.argv[3]
    server = Server.from_args(sys.argv[4:])
    server.bootstrap()
    svc = http_proxy_service(server.configuration, CachingProxy(upstream, storage_from(spec)))
    svc.add_tcp(f"127.0.0.1:{listen}")
    server.add_service(svc)
    server.run_forever()


if __name__ == "__main__":
    main()
