"""``prometheus_http_service``: the metrics endpoint Prometheus scrapes, and the
kept request traces of an ``Observability`` (``/traces``, behind its trace token)."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any, Optional
from urllib.parse import unquote

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from ..apps.http_app import ServeHttp
from ..protocols.http.header import ResponseHeader
from ..protocols.http.interfaces import DownstreamSession
from ..protocols.http.small_response import NO_STORE, small_response_header
from ..services.listening import Service

__all__ = ["PrometheusApp", "prometheus_http_service"]


class PrometheusApp(ServeHttp):
    """Answers every GET with the registry in Prometheus' text format
    (gzip-compressed when the scraper accepts it, as Pingora does).

    Given ``traces`` (an ``Observability``), ``GET /traces`` answers its kept
    request traces as JSON (newest last) and ``GET /traces/<request id>`` those of
    one request, to a request carrying ``Authorization: Bearer <trace token>``
    only: without the token, or when none is configured, nothing is shown (401).
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY, traces: Any = None) -> None:
        super().__init__()
        self.registry = registry
        self.traces = traces

    async def response(self, session: DownstreamSession) -> tuple[ResponseHeader, bytes]:
        if session.req.method not in ("GET", "HEAD"):
            body = b"use GET\n"
            return small_response_header(405, body, extra=((b"Allow", b"GET, HEAD"),)), body
        if self.traces is not None:
            path = session.req.uri.partition("?")[0]
            if path == "/traces" or path.startswith("/traces/"):
                return self._traces(session, path)
        # Collecting walks every metric: keep it off the event loop's critical path.
        body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, self.registry)
        extra = ()
        accept = session.req.headers.get_bytes(b"accept-encoding") or b""
        if b"gzip" in accept:
            body = gzip.compress(body, 7)
            extra = ((b"Content-Encoding", b"gzip"),)
        return small_response_header(200, body, CONTENT_TYPE_LATEST, extra), body

    def _traces(self, session: DownstreamSession, path: str) -> tuple[ResponseHeader, bytes]:
        if not self.traces.trace_access(session.req.headers.get_bytes(b"authorization")):
            return _json(401, {"error": "the trace token is required (Authorization: Bearer <token>)"},
                         ((b"WWW-Authenticate", b'Bearer realm="propylon traces"'),))
        if path == "/traces":
            return _json(200, {"traces": list(self.traces.recent_traces)})
        wanted = unquote(path[len("/traces/"):])
        found = [t for t in list(self.traces.recent_traces) if t.get("request_id") == wanted]
        if not found:
            return _json(404, {"error": f"no kept trace of request {wanted!r}"})
        return _json(200, {"traces": found})


def _json(status: int, data: Any, extra: tuple = ()) -> tuple[ResponseHeader, bytes]:
    body = json.dumps(data).encode() + b"\n"
    return small_response_header(status, body, "application/json",
                                 NO_STORE + extra), body


def prometheus_http_service(registry: Optional[CollectorRegistry] = None,
                            name: str = "Prometheus metric HTTP", traces: Any = None) -> Service:
    """A listening service exposing ``registry`` (default: prometheus_client's
    global one) on every path, and with ``traces`` (an ``Observability``) its kept
    request traces under ``/traces`` (see :class:`PrometheusApp`); add an endpoint
    with ``add_tcp``."""
    return Service(name, PrometheusApp(registry if registry is not None else REGISTRY, traces))
