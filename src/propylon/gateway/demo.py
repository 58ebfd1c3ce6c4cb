"""The embedded demo: Propylon City's blue and green upstreams behind a gateway.

``propylon run`` with no configuration starts it:

* the lab members blue (127.0.0.1:18080) and green (127.0.0.1:18081), as child
  processes (already-running ones are used as they are);
* a gateway on 127.0.0.1:6188 that round-robins over them with TCP health
  checks every second, answers ``/healthz`` itself, refuses ``/admin`` with 403,
  and tags every response with ``X-Propylon-Upstream``;
* Prometheus metrics on 127.0.0.1:6192 (``propylon_demo_requests_total``).
"""

from __future__ import annotations

import atexit
import logging
import socket
from typing import Optional

from prometheus_client import Counter

from ..lb import LoadBalancer, RoundRobin, TcpHealthCheck
from ..metrics import prometheus_http_service
from ..proxy import ProxyHttp, http_proxy_service
from ..services import background_service
from ..upstreams.peer import HttpPeer
from ..errors import Error, ErrorType

log = logging.getLogger("propylon.demo")

LISTEN = "127.0.0.1:6188"
METRICS = "127.0.0.1:6192"
UPSTREAMS = {"blue": ("127.0.0.1", 18080), "green": ("127.0.0.1", 18081)}

REQUESTS = Counter("propylon_demo_requests_total", "Requests seen by the demo gateway", ["upstream"])


class DemoGateway(ProxyHttp):
    """Round robin over the healthy lab upstreams."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    def new_ctx(self) -> dict:
        return {}

    async def request_filter(self, session, ctx) -> bool:
        path = session.req_header.path
        if path == "/healthz":
            await session.write_response(200, "ok\n", {"Content-Type": "text/plain"})
            return True
        if path.startswith("/admin"):
            await session.respond_error(403)
            return True
        return False

    async def upstream_peer(self, session, ctx) -> HttpPeer:
        backend = self.lb.select(b"", 256)
        if backend is None:
            raise Error.explain(ErrorType.http_status(503), "no healthy upstream")
        ctx["upstream"] = backend.addr
        return HttpPeer(backend, tls=False, sni="")

    async def response_filter(self, session, upstream_response, ctx) -> None:
        upstream_response.insert_header("X-Propylon-Upstream", ctx.get("upstream", ""))

    async def logging(self, session, e, ctx) -> None:
        REQUESTS.labels(ctx.get("upstream", "none") if ctx else "none").inc()


def _accepts(addr: tuple[str, int]) -> bool:
    try:
        socket.create_connection(addr, timeout=0.3).close()
        return True
    except OSError:
        return False


def start_lab() -> Optional[object]:
    """Start blue and green unless they already answer; returns the Lab or None."""
    missing = [name for name, addr in UPSTREAMS.items() if not _accepts(addr)]
    if not missing:
        log.info("lab upstreams already running")
        return None
    from ..lab import Lab

    lab = Lab(only=missing)
    lab.start()
    atexit.register(lab.close)
    return lab


def build(server) -> None:
    """Add the demo's services to ``server``."""
    lb = LoadBalancer.try_from_iter([f"{h}:{p}" for h, p in UPSTREAMS.values()], selection=RoundRobin)
    lb.set_health_check(TcpHealthCheck())
    lb.health_check_frequency = 1.0
    gateway = http_proxy_service(server.configuration, DemoGateway(lb), name="Demo gateway")
    gateway.add_tcp(LISTEN)
    metrics = prometheus_http_service()
    metrics.add_tcp(METRICS)
    server.add_services([gateway, metrics, background_service("health check", lb)])


BANNER = f"""\
Propylon demo gateway
  gateway   http://{LISTEN}/          round robin over blue and green
  health    http://{LISTEN}/healthz
  refused   http://{LISTEN}/admin     (403)
  metrics   http://{METRICS}/metrics
  upstreams blue http://127.0.0.1:18080  green http://127.0.0.1:18081
Try:  curl -i http://{LISTEN}/      (Ctrl-C stops everything)
"""
