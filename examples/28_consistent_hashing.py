"""Lesson 28: consistent hashing (Ketama) – the same path always reaches the same backend.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/28_consistent_hashing.py
    for i in 1 2 3 4 5; do
      curl -s http://127.0.0.1:6172/user/$i; echo
      curl -s http://127.0.0.1:6172/user/$i; echo; echo ---
    done

Blue and green are placed on a hash ring (160 points each, nginx-compatible);
a request's path is hashed onto the ring and goes to the next backend clockwise.
Removing a backend only moves the keys that were on its arcs.
"""

import logging

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import Consistent, LoadBalancer

log = logging.getLogger("consistent_hashing")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")


class LB(ProxyHttp):
    """Routes by a hash of the request path."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def upstream_peer(self, session, ctx):
        # The key is the path: same path, same point on the ring, same backend.
        path = session.req_header.path
        upstream = self.lb.select(path.encode(), 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, "Empty upstream pool")
        log.info("Path '%s' hashed to upstream: %r", path, upstream)
        return HttpPeer(upstream, tls=False, sni="consistent.cluster")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "consistent-hash-cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    upstreams = LoadBalancer.try_from_iter(
        ["127.0.0.1:18080", "127.0.0.1:18081"],  # blue, green
        selection=Consistent,
    )
    background = background_service("consistent_lb", upstreams)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6172")
    log.info("Consistent Hashing LB running on 127.0.0.1:6172")
    log.info("Try: curl http://127.0.0.1:6172/user/123 vs /user/456")

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
