"""Lesson 31: HTTP health checks – a frozen backend fails its probe by read timeout.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/31_health_check_http.py
    while true; do curl -s http://127.0.0.1:6175/; echo; sleep 0.5; done
    kill -STOP <blue's pid>     # or lab.freeze("blue"): connects succeed, nothing answers
    #   "... becomes unhealthy, ... ReadTimedout ..." and only GREEN answers
    kill -CONT <blue's pid>     # the next probe passes and blue is back

A TCP check would keep a frozen process in rotation: the kernel still completes
the handshake. The HTTP check sends ``GET /`` with ``Host: localhost`` and wants a
200 within ``read_timeout``.
"""

import logging

from propylon import (Error, ErrorType, HttpPeer, PeerOptions, ProxyHttp, Server,
                      background_service, http_proxy_service)
from propylon.lb import HttpHealthCheck, LoadBalancer, RoundRobin

log = logging.getLogger("health_check_http")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")


class LB(ProxyHttp):
    """Round robin over the backends that passed their last HTTP probe."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def upstream_peer(self, session, ctx):
        upstream = self.lb.select(b"", 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, "All upstreams are down")
        log.info("Routed to upstream: %r", upstream)
        # Client traffic gets timeouts too, for a backend that hangs between probes.
        options = PeerOptions(connection_timeout=1.0, read_timeout=1.0)
        return HttpPeer(upstream, tls=False, sni="http-health-check.cluster.local", options=options)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "http-health-check-cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    upstreams = LoadBalancer.try_from_iter(["127.0.0.1:18080", "127.0.0.1:18081"], selection=RoundRobin)
    upstreams.set_health_check(HttpHealthCheck(
        "localhost",              # Host header of the probe
        False,                    # plain HTTP
        connection_timeout=1.0,
        read_timeout=1.0,         # connected but silent for 1 s: unhealthy
        consecutive_success=1,
        consecutive_failure=1,
    ))
    upstreams.health_check_frequency = 1.0
    upstreams.parallel_health_check = True
    background = background_service("http_health_check_lb", upstreams)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6175")
    log.info("HTTP Health Check LB running on 127.0.0.1:6175")

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
