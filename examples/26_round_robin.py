"""Lesson 26: round robin – requests on 127.0.0.1:6170 alternate between blue and green.

    python -m propylon.lab &                    # the lab upstreams
    PROPYLON_LOG=info python examples/26_round_robin.py
    curl http://127.0.0.1:6170/                 # Response from BLUE
    curl http://127.0.0.1:6170/                 # Response from GREEN

The load balancer lives in a background service. With no health check and no
discovery to refresh, its loop has no periodic work: it fills the backend set once
and returns, while the proxy keeps using the balancer it was handed.
"""

import logging

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import LoadBalancer, RoundRobin

log = logging.getLogger("round_robin")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")


class LB(ProxyHttp):
    """Sends each request to the next backend in turn."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def upstream_peer(self, session, ctx):
        # Round robin ignores the key; up to 256 candidates are tried for a ready one.
        upstream = self.lb.select(b"", 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, "Empty upstream pool")
        log.info("Selected upstream: %r", upstream)
        return HttpPeer(upstream, tls=False, sni="upstream")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "round-robin-cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    upstreams = LoadBalancer.try_from_iter(
        ["127.0.0.1:18080", "127.0.0.1:18081"],  # blue, green
        selection=RoundRobin,
    )
    background = background_service("round_robin_lb", upstreams)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6170")
    log.info("Round Robin Load Balancer running on 127.0.0.1:6170")

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
