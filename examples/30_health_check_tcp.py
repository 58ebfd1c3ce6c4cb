"""Lesson 30: TCP health checks – a backend that stops accepting leaves the rotation.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/30_health_check_tcp.py
    while true; do curl -s http://127.0.0.1:6174/; echo; sleep 0.5; done
    # stop blue (Ctrl-C its lab process, or `lab.stop("blue")` from Python):
    #   "... becomes unhealthy, ConnectRefused ..." and only GREEN answers;
    # start it again: "... becomes healthy" and BLUE/GREEN alternate again.

Every second the background service opens a TCP connection to each backend (in
parallel, 1 s connect timeout); one failure marks a backend down, one success
marks it up again. Between two probes a backend may die unnoticed, so requests
also get short timeouts, and a request whose connect fails is retried once on
the next backend instead of surfacing an error to the client.
"""

import logging

from propylon import (Error, ErrorType, HttpPeer, PeerOptions, ProxyHttp, Server,
                      background_service, http_proxy_service)
from propylon.lb import LoadBalancer, RoundRobin, TcpHealthCheck

log = logging.getLogger("health_check_tcp")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")


class LB(ProxyHttp):
    """Round robin over the backends that passed their last TCP probe."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    def new_ctx(self):
        return {"connect_failures": 0}

    async def upstream_peer(self, session, ctx):
        # Backends marked unhealthy are skipped; None means every one is down.
        upstream = self.lb.select(b"", 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, "All upstreams are down")
        log.info("Routed to upstream: %r", upstream)
        # Fail fast if a backend died since the last probe.
        options = PeerOptions(connection_timeout=1.0, read_timeout=1.0)
        return HttpPeer(upstream, tls=False, sni="health-check.cluster", options=options)

    def fail_to_connect(self, session, peer, ctx, e):
        # Nothing was sent yet, so trying the next backend is safe; once is enough.
        ctx["connect_failures"] += 1
        if ctx["connect_failures"] == 1:
            e.set_retry(True)
        return e

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "health-check-cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    upstreams = LoadBalancer.try_from_iter(["127.0.0.1:18080", "127.0.0.1:18081"], selection=RoundRobin)
    upstreams.set_health_check(TcpHealthCheck(
        connection_timeout=1.0,   # a probe that cannot connect within 1 s fails
        consecutive_success=1,    # one good probe brings a backend back
        consecutive_failure=1,    # one bad probe takes it out
    ))
    upstreams.health_check_frequency = 1.0
    upstreams.parallel_health_check = True
    background = background_service("health_check_lb", upstreams)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6174")
    log.info("TCP Health Check LB running on 127.0.0.1:6174")

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
