"""Sample: a load-balanced proxy with TCP health checks every 5 seconds.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/samples/load_balancer.py
    for i in 1 2 3 4; do curl -s http://127.0.0.1:6188/; echo; done   # BLUE, GREEN, BLUE, GREEN

The pool is blue, green and an address nothing listens on. A background health
checker connects to each one every 5 seconds (the first round runs at start), so
the dead one is out of rotation from the beginning, and a backend that stops is
taken out at the next round. Requests carry ``Host: one.one.one.one``, the name the
original sample sent to its public upstreams.
"""

import logging

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import LoadBalancer, RoundRobin, TcpHealthCheck

log = logging.getLogger("load_balancer")

UPSTREAMS = [
    "127.0.0.1:18080",  # upstream A (blue)
    "127.0.0.1:18081",  # upstream B (green)
    "127.0.0.1:343",    # nothing listens here: the health check keeps it out
]


class LB(ProxyHttp):
    """Round robin over the upstreams that passed their last TCP check."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def upstream_peer(self, session, ctx):
        upstream = self.lb.select(b"", 256)
        if upstream is None:
            raise Error.explain(ErrorType.custom("NoUpstreamAvailable"), "all upstreams are unhealthy")
        log.info("upstream peer is: %r", upstream)
        return HttpPeer(upstream, tls=False, sni="one.one.one.one")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "one.one.one.one")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    upstreams = LoadBalancer.try_from_iter(UPSTREAMS, selection=RoundRobin)
    upstreams.set_health_check(TcpHealthCheck())
    upstreams.health_check_frequency = 5.0
    background = background_service("health check", upstreams)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6188")
    log.info("Load balancer running on 127.0.0.1:6188")

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
