"""Lesson 48, part two: the built-in metrics and an access log, with no metric code.

    python -m propylon.lab &
    python examples/48_builtin_metrics.py
    curl -i http://127.0.0.1:6199/     # X-Request-Id in the response
    curl http://127.0.0.1:6200/        # propylon_requests_total{...,upstream="127.0.0.1:18080"} ...

Part one counted requests in ``logging`` by hand. ``Observability`` does what
every operator wants without a hook: ``propylon_*`` metrics per upstream (request
counts and durations, connect time and time to the first upstream byte, pool
reuse, retries, errors by type, backend health), a JSON access log line per
request on stdout and an ``X-Request-Id`` for each request (``trace_context=True``
would also send the upstream a W3C ``traceparent`` with the proxy's own span id). With ``threads: N`` the scrape returns
the sum over all workers. ``docs/observability.md`` lists the metrics and the
access log fields; ``conf/grafana/propylon.json`` is a dashboard for them.
"""

from propylon import (HttpPeer, ProxyHttp, Server, background_service, http_proxy_service,
                      prometheus_http_service)
from propylon.lb import LoadBalancer, RoundRobin, TcpHealthCheck
from propylon.metrics import AccessLogConfig, Observability


class RoundRobinProxy(ProxyHttp):
    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def upstream_peer(self, session, ctx):
        return HttpPeer(self.lb.select(b"", 256), tls=False, sni="")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    lb = LoadBalancer.try_from_iter(["127.0.0.1:18080", "127.0.0.1:18081"], selection=RoundRobin)
    lb.set_health_check(TcpHealthCheck())
    lb.health_check_frequency = 1.0
    health = background_service("health checks", lb)

    obs = Observability(
        server.configuration,
        service="lesson48",
        access_log=AccessLogConfig(path="-", format="json",
                                   fields=("time", "client_addr", "method", "path", "status",
                                           "duration", "upstream_addr", "request_id")),
    )
    obs.watch_balancer("blue-green", lb)

    proxy = http_proxy_service(server.configuration, RoundRobinProxy(health.task()), "lesson48",
                               observer=obs)
    proxy.add_tcp("127.0.0.1:6199")
    metrics = prometheus_http_service()
    metrics.add_tcp("127.0.0.1:6200")
    server.add_services([health, proxy, metrics])
    server.run_forever()


if __name__ == "__main__":
    main()
