"""A load-balanced proxy with built-in metrics (and optionally an access log), in a
process of its own, for the observability tests.

    python tests/metrics/run_observed.py LISTEN_PORT METRICS_PORT --upstream H:P [--upstream H:P ...]
        [--access-log PATH] [--format json|combined] [--fields a,b,...] [--failures N]
        [--metrics-dir DIR] [--conf CONF]

Round robin over the upstreams with a TCP health check every 0.2 s; a request
whose connect fails is retried once on the next backend.
"""

import argparse

from propylon import (Error, ErrorType, HttpPeer, PeerOptions, ProxyHttp, Server, background_service,
                      http_proxy_service, prometheus_http_service)
from propylon.lb import LoadBalancer, RoundRobin, TcpHealthCheck
from propylon.metrics import AccessLogConfig, Observability

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")


class Balanced(ProxyHttp):
    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    def new_ctx(self):
        return {"connect_failures": 0}

    async def upstream_peer(self, session, ctx):
        backend = self.lb.select(b"", 256)
        if backend is None:
            raise Error.explain(NO_UPSTREAM, "all upstreams are down")
        return HttpPeer(backend, tls=False, sni="",
                        options=PeerOptions(connection_timeout=1.0, read_timeout=5.0))

    def fail_to_connect(self, session, peer, ctx, e):
        ctx["connect_failures"] += 1
        if ctx["connect_failures"] == 1:
            e.set_retry(True)
        return e


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("listen", type=int)
    ap.add_argument("metrics", type=int)
    ap.add_argument("--upstream", action="append", required=True)
    ap.add_argument("--access-log")
    ap.add_argument("--format", default="json")
    ap.add_argument("--fields")
    ap.add_argument("--failures", type=int, default=1, help="failed probes that mark a backend down")
    ap.add_argument("--metrics-dir", help="where the workers keep their values")
    ap.add_argument("--conf", help="the server's YAML configuration")
    args = ap.parse_args()

    server = Server.from_args(["-c", args.conf] if args.conf else [])
    server.bootstrap()

    lb = LoadBalancer.try_from_iter(args.upstream, selection=RoundRobin)
    lb.set_health_check(TcpHealthCheck(connection_timeout=0.5, consecutive_success=1,
                                      consecutive_failure=args.failures))
    lb.health_check_frequency = 0.2
    lb.parallel_health_check = True
    background = background_service("health checks", lb)

    access_log = None
    if args.access_log:
        access_log = {"path": args.access_log, "format": args.format}
        if args.fields:
            access_log["fields"] = tuple(args.fields.split(","))
        access_log = AccessLogConfig.from_mapping(access_log)
    obs = Observability(server.configuration, service="web", access_log=access_log,
                        metrics_dir=args.metrics_dir)
    obs.watch_balancer("web", lb)

    proxy = http_proxy_service(server.configuration, Balanced(background.task()), observer=obs)
    proxy.add_tcp(f"127.0.0.1:{args.listen}")
    metrics = prometheus_http_service()
    metrics.add_tcp(f"127.0.0.1:{args.metrics}")
    server.add_services([background, proxy, metrics])
    server.run_forever()


if __name__ == "__main__":
    main()
