"""Lesson 48: observability – a request counter and a latency histogram, scraped by Prometheus.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/48_observability.py
    curl http://127.0.0.1:6200/        # HELP/TYPE lines, http_requests_total 0.0
    curl http://127.0.0.1:6199/        # three times: blue, green, blue
    curl http://127.0.0.1:6200/        # http_requests_total 3.0,
                                       # ..._bucket{le="0.025"} 2.0, {le="0.25"} 3.0

Two planes: traffic on 6199, metrics on 6200 (a second listening service that
Prometheus scrapes). Requests alternate between a fast upstream (blue's
``/slow?ms=10``) and a slow one (green's ``/slow?ms=100``) so the histogram
has something to show.

* ``new_ctx`` runs when the request starts: the context keeps the start time.
* ``logging`` runs once when the request is over, whatever happened (even
  after an error): it counts the request and observes its duration.

Pingora's "two registries" trap (two copies of the ``prometheus`` crate, the
endpoint serving the one you did not register in) has a Python cousin: a
metric registered in a ``CollectorRegistry`` of your own is not in
``prometheus_client.REGISTRY``, which ``prometheus_http_service()`` serves by
default. Register in the default registry, or pass yours to the service.

The built-in ``propylon_*`` metrics (per upstream, pool, errors...) need no code
at all: see ``docs/observability.md``.
"""

import itertools
import logging
import time

from prometheus_client import Counter, Histogram

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service, prometheus_http_service

log = logging.getLogger("observability")

#: (name, address, Host, path): the fast and the slow upstream.
FAST = ("Blue", ("127.0.0.1", 18080), "blue.propylon.test", "/slow?ms=10")
SLOW = ("Green", ("127.0.0.1", 18081), "green.propylon.test", "/slow?ms=100")


class MetricsContext:
    __slots__ = ("start_time", "upstream")

    def __init__(self) -> None:
        self.start_time = time.monotonic()
        self.upstream = FAST


class ObservabilityProxy(ProxyHttp):
    def __init__(self, req_counter: Counter, req_histogram: Histogram) -> None:
        self.req_counter = req_counter
        self.req_histogram = req_histogram
        self.turns = itertools.count()  # per worker process
        self.finished = 0

    def new_ctx(self):
        return MetricsContext()

    async def upstream_peer(self, session, ctx):
        count = next(self.turns)
        ctx.upstream = FAST if count % 2 == 0 else SLOW
        name, addr, host, _ = ctx.upstream
        log.info("Forwarding request #%d to %s", count, name)
        return HttpPeer(addr, tls=False, sni=host)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        _, _, host, path = ctx.upstream
        upstream_request.insert_header("Host", host)
        upstream_request.set_uri(path)

    async def logging(self, session, e, ctx):
        duration = time.monotonic() - ctx.start_time
        self.req_counter.inc()
        self.req_histogram.observe(duration)
        self.finished += 1
        log.info("Request finished. Path: %s, Latency: %.4fs, Total Request: %d",
                 session.req_header.path, duration, self.finished)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    # Registered once, in prometheus_client's default registry.
    proxy = ObservabilityProxy(
        Counter("http_requests", "Total number of HTTP requests processed."),
        Histogram("http_request_duration_seconds", "The HTTP request latency in seconds."),
    )
    proxy_service = http_proxy_service(server.configuration, proxy)
    proxy_service.add_tcp("127.0.0.1:6199")
    server.add_service(proxy_service)

    # The control plane: every path answers with the registry's metrics.
    metrics = prometheus_http_service()
    metrics.add_tcp("127.0.0.1:6200")
    server.add_service(metrics)

    log.info("Proxy running on 6199, Metrics on 6200")
    server.run_forever()


if __name__ == "__main__":
    main()
