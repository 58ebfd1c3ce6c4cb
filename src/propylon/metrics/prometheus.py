"""``prometheus_http_service``: the metrics endpoint Prometheus scrapes."""

from __future__ import annotations

import asyncio
import gzip
from typing import Optional

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from ..apps.http_app import ServeHttp
from ..protocols.http.header import ResponseHeader
from ..protocols.http.interfaces import DownstreamSession
from ..protocols.http.small_response import small_response_header
from ..services.listening import Service

__all__ = ["PrometheusApp", "prometheus_http_service"]


class PrometheusApp(ServeHttp):
    """Answers every GET with the registry in Prometheus' text format
    (gzip-compressed when the scraper accepts it, as Pingora does)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__()
        self.registry = registry

    async def response(self, session: DownstreamSession) -> tuple[ResponseHeader, bytes]:
        if session.req.method not in ("GET", "HEAD"):
            body = b"use GET\n"
            return small_response_header(405, body, extra=((b"Allow", b"GET, HEAD"),)), body
        # Collecting walks every metric: keep it off the event loop's critical path.
        body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, self.registry)
        extra = ()
        accept = session.req.headers.get_bytes(b"accept-encoding") or b""
        if b"gzip" in accept:
            body = gzip.compress(body, 7)
            extra = ((b"Content-Encoding", b"gzip"),)
        return small_response_header(200, body, CONTENT_TYPE_LATEST, extra), body


def prometheus_http_service(registry: Optional[CollectorRegistry] = None,
                            name: str = "Prometheus metric HTTP") -> Service:
    """A listening service exposing ``registry`` (default: prometheus_client's
    global one) on every path; add an endpoint with ``add_tcp``."""
    return Service(name, PrometheusApp(registry if registry is not None else REGISTRY))
