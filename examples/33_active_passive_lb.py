"""Lesson 33: active-passive – blue takes all traffic; green only while blue is down.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/33_active_passive_lb.py
    while true; do curl -s http://127.0.0.1:6177/; echo; sleep 1; done   # BLUE
    # stop blue: "FAILOVER ALERT ..." and GREEN answers; start it: BLUE again

Only the primary is in the load balancer: a pool holding both would share traffic
(active-active). When the health check empties the pool, ``select`` returns None
and the request goes to the backup, which is written here by hand.
"""

import logging

from propylon import HttpPeer, PeerOptions, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import LoadBalancer, RoundRobin, TcpHealthCheck

log = logging.getLogger("active_passive")

BACKUP = ("127.0.0.1", 18081)  # green


class LB(ProxyHttp):
    """The primary pool while it has a healthy member, else the backup."""

    def __init__(self, primary: LoadBalancer) -> None:
        self.primary = primary

    async def upstream_peer(self, session, ctx):
        upstream = self.primary.select(b"", 256)
        if upstream is not None:
            log.info("Primary (Blue) is healthy. Routing to %s", upstream.addr)
            # Short timeouts: the primary may die between two probes.
            options = PeerOptions(connection_timeout=1.0, read_timeout=1.0)
            return HttpPeer(upstream, tls=False, sni="primary.cluster.local", options=options)
        log.warning("FAILOVER ALERT: Primary pool is empty! Switching to Backup (Green).")
        return HttpPeer(BACKUP, tls=False, sni="backup.cluster.local")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "active-passive-cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    primary = LoadBalancer.try_from_iter(["127.0.0.1:18080"], selection=RoundRobin)  # blue only
    primary.set_health_check(TcpHealthCheck(connection_timeout=1.0, consecutive_success=1,
                                            consecutive_failure=1))
    primary.health_check_frequency = 1.0
    primary.parallel_health_check = True
    background = background_service("primary_pool_lb", primary)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6177")
    log.info("Active-Passive LB running on 127.0.0.1:6177")
    log.info("Primary: Blue (Checked). Backup: Green (Static Fallback).")

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
