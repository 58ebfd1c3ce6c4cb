"""``prometheus_http_service``: the metrics endpoint Prometheus scrapes."""

from __future__ import annotations

import asyncio
import gzip
from typing import Callable, Optional

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from ..apps.base import ListeningApp
from ..protocols.http.header import ResponseHeader
from ..protocols.http.v1.server import H1ServerConnection, HttpServerOptions
from ..protocols.http.v1.server_session import H1ServerSession
from ..server.shutdown import ShutdownWatch

__all__ = ["PrometheusApp", "prometheus_http_service"]


class PrometheusApp(ListeningApp):
    """Answers every GET with the registry in Prometheus' text format
    (gzip-compressed when the scraper accepts it, as Pingora does)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self._connections: set = set()

    async def _handle(self, ds: H1ServerSession) -> bool:
        if ds.req.method not in ("GET", "HEAD"):
            ds.respond_simple(405, b"use GET\n", {"Allow": "GET, HEAD"})
            return False
        # Collecting walks every metric: keep it off the event loop's critical path.
        body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, self.registry)
        resp = ResponseHeader.build(200)
        resp.insert_header(b"Content-Type", CONTENT_TYPE_LATEST)
        accept = ds.req.headers.get_bytes(b"accept-encoding") or b""
        if b"gzip" in accept:
            body = gzip.compress(body, 7)
            resp.insert_header(b"Content-Encoding", b"gzip")
        resp.insert_header(b"Content-Length", str(len(body)))
        ds.write_header(resp, end_of_stream=ds.is_head)
        if not ds.is_head:
            ds.write_body(body)
            ds.finish()
        await ds.drain()
        return ds.keepalive

    def protocol_factory(self, shutdown: ShutdownWatch) -> Callable[[], asyncio.BaseProtocol]:
        opts = HttpServerOptions()
        return lambda: H1ServerConnection(self._handle, shutdown, opts, self._connections)

    async def wait_drained(self) -> None:
        while self._connections:
            for conn in list(self._connections):
                conn.close_if_idle()
            await asyncio.sleep(0.05)


def prometheus_http_service(registry: Optional[CollectorRegistry] = None,
                            name: str = "Prometheus metric HTTP"):
    """A listening service exposing ``registry`` (default: prometheus_client's
    global one) on every path; add an endpoint with ``add_tcp``."""
    from ..services.listening import Service

    return Service(name, PrometheusApp(registry if registry is not None else REGISTRY))
