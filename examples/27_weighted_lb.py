"""Lesson 27: weighted round robin – blue (weight 3) gets three requests for green's one.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/27_weighted_lb.py
    for i in 1 2 3 4; do curl -s http://127.0.0.1:6171/; echo; done
    # BLUE, BLUE, BLUE, GREEN (the ratio holds over any multiple of four)

``LoadBalancer.try_from_iter`` gives every address weight 1, so the weighted
backends are built by hand and handed to a ``Static`` discovery. ``RoundRobin``
is weighted already: each backend appears ``weight`` times in its rotation.
"""

import logging

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import Backend, Backends, LoadBalancer, RoundRobin, Static

log = logging.getLogger("weighted_lb")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")


class LB(ProxyHttp):
    """Sends each request to the next backend of the weighted rotation."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def upstream_peer(self, session, ctx):
        upstream = self.lb.select(b"", 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, "Empty upstream pool")
        log.info("Selected upstream: %r", upstream)
        return HttpPeer(upstream, tls=False, sni="weighted.upstream")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "weighted-cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    blue = Backend("127.0.0.1:18080", weight=3)
    green = Backend("127.0.0.1:18081", weight=1)
    # from_backends starts empty; the background service's first update fills it.
    upstreams = LoadBalancer.from_backends(Backends(Static({blue, green})), selection=RoundRobin)
    background = background_service("weighted_lb", upstreams)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6171")
    log.info("Weighted Load Balancer running on 127.0.0.1:6171")
    log.info("Configuration: Blue (Weight 3) vs Green (Weight 1)")

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
