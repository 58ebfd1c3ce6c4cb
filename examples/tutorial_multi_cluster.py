"""Tutorial: two load-balanced clusters behind one proxy, chosen by path.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/tutorial_multi_cluster.py
    curl http://127.0.0.1:6188/one/     # cluster one: Response from BLUE
    curl http://127.0.0.1:6188/two/     # cluster two: Response from GREEN
    curl http://127.0.0.1:6188/         # cluster two as well

Paths starting with ``/one/`` go to cluster one, everything else to cluster two.
Each cluster is its own ``LoadBalancer`` with its own TCP health check, run every
second by its own background service. Each also lists a port nothing listens on
(``:343``): the first check round marks it unhealthy and it never gets traffic.
The tutorial's upstreams spoke TLS; the lab's blue and green speak plain HTTP.
"""

import logging

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import LoadBalancer, RoundRobin, TcpHealthCheck

log = logging.getLogger("multi_cluster")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")


class Router(ProxyHttp):
    """Chooses a cluster by path, then a backend within it."""

    def __init__(self, cluster_one: LoadBalancer, cluster_two: LoadBalancer) -> None:
        self.cluster_one = cluster_one
        self.cluster_two = cluster_two

    async def upstream_peer(self, session, ctx):
        if session.req_header.path.startswith("/one/"):
            name, cluster = "one", self.cluster_one
        else:
            name, cluster = "two", self.cluster_two
        upstream = cluster.select(b"", 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, f"no healthy upstream in cluster {name}")
        log.info("upstream peer is: %r (cluster %s)", upstream, name)
        return HttpPeer(upstream, tls=False, sni="cluster.propylon.test")


def build_cluster_service(upstreams: list[str]):
    """A background service running TCP health checks every second for ``upstreams``;
    its ``task()`` is the cluster's load balancer."""
    cluster = LoadBalancer.try_from_iter(upstreams, selection=RoundRobin)
    cluster.set_health_check(TcpHealthCheck())
    cluster.health_check_frequency = 1.0
    return background_service("cluster health check", cluster)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    cluster_one = build_cluster_service(["127.0.0.1:18080", "127.0.0.1:343"])  # blue + a dead port
    cluster_two = build_cluster_service(["127.0.0.1:18081", "127.0.0.2:343"])  # green + a dead port

    router = Router(cluster_one.task(), cluster_two.task())
    router_service = http_proxy_service(server.configuration, router)
    router_service.add_tcp("127.0.0.1:6188")
    log.info("Multi-cluster router running on 127.0.0.1:6188 (/one/ -> cluster one, else cluster two)")

    server.add_service(router_service)
    server.add_service(cluster_one)
    server.add_service(cluster_two)
    server.run_forever()


if __name__ == "__main__":
    main()
