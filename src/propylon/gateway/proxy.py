"""``GatewayProxy``: the ``ProxyHttp`` that serves a gateway snapshot on one listener.

Each request takes the gateway's current snapshot in ``new_ctx`` and keeps it: the
route, its plugins and its cluster all come from that one snapshot. Errors map as
in nginx and Envoy: no route 404, no ready backend 503, an upstream timeout 504,
another upstream failure 502.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from ..errors import Error, ErrorSource, ErrorType
from ..proxy import ProxyHttp
from ..proxy.proxy_trait import FailToProxy, default_error_status
from ..upstreams.peer import HttpPeer
from .plugins.respond import respond
from .breaker import circuit_open
from .router import normalize_host
from .runtime import PROXY, REDIRECT, Gateway, RequestCtx, Snapshot

__all__ = ["GatewayProxy"]

_TIMEOUTS = frozenset({ErrorType.READ_TIMEDOUT, ErrorType.WRITE_TIMEDOUT, ErrorType.CONNECT_TIMEDOUT,
                       ErrorType.TLS_HANDSHAKE_TIMEDOUT})
_FAILED_STATUS = frozenset({502, 503, 504})
_NO_ROUTE = b"no route for this request\n"
#: Distinct Host values whose normalized form is remembered (then forgotten at once:
#: a client inventing hosts costs a clear now and then, never memory).
_HOST_MEMO = 1024


def _authority(req: Any) -> Optional[str]:
    host = req.headers.get("host")
    if host is None and req.uri.startswith(("http://", "https://")):
        host = req.uri.split("/", 3)[2]
    return host


class GatewayProxy(ProxyHttp):
    """Routes, plugins and clusters from the :class:`Gateway`'s current snapshot."""

    def __init__(self, gateway: Gateway, listener: str) -> None:
        self.gateway = gateway
        self.listener = listener
        self.errors = gateway.recent_errors
        #: Set when a reload removes this listener: requests still arriving on its open
        #: connections are served by the last snapshot that had it.
        self.retired: Optional[Snapshot] = None
        self._hosts: dict[Optional[str], str] = {}

    def new_ctx(self) -> RequestCtx:
        return RequestCtx(self.retired or self.gateway.current)

    async def request_filter(self, session, ctx: RequestCtx) -> bool:
        snap = ctx.snapshot
        req = session.req_header
        raw = _authority(req)
        host = self._hosts.get(raw)
        if host is None:
            host = normalize_host(raw)
            if len(self._hosts) >= _HOST_MEMO:
                self._hosts.clear()
            self._hosts[raw] = host
        found = snap.router.find(self.listener, host, req.method, req.path, req.headers, req.query)
        if found is None:
            await respond(session, 404, _NO_ROUTE, (("Content-Type", "text/plain"),))
            return True
        route = ctx.route = snap.routes[found.route.index]
        ctx.captures = found.captures
        record = session.observation
        if record is not None:  # the route's name labels its metrics and log lines
            record.service = route.name
        for hook in route.request_hooks:
            if await hook(session, ctx):
                return True
        if route.kind == PROXY:
            if ctx.cluster is None:  # else a plugin (traffic_split) chose it
                ctx.cluster = snap.clusters[route.cluster]
            return False
        if route.kind == REDIRECT:
            redirect = route.conf.redirect
            query = req.query
            fields = {"host": host, "path": req.path,
                      "query": f"?{query}" if query else ""}
            fields.update((k, v or "") for k, v in ctx.captures.items())
            location = redirect.location.format_map(fields)
            await respond(session, redirect.status, b"", (("Location", location),), route.response_rules)
            return True
        fixed = route.conf.respond
        headers = [("Content-Type", fixed.content_type), *fixed.headers.items()]
        await respond(session, fixed.status, fixed.body, headers, route.response_rules)
        return True

    # --- the cache stage, for the routes with a cache plugin ---------------------------
    # Only a request that passed request_filter on a proxy route gets here.
    def request_cache_filter(self, session, ctx: RequestCtx) -> None:
        cache = ctx.route.cache
        if cache is not None:
            cache.enable(session)

    def cache_key_callback(self, session, ctx: RequestCtx):
        return ctx.route.cache.key(session, ctx)

    def response_cache_filter(self, session, resp, ctx: RequestCtx):
        return ctx.route.cache.cacheable(session, resp)

    def should_serve_stale(self, session, ctx: RequestCtx, error) -> bool:
        # The entry's own windows decide: stale-while-revalidate (error None) and
        # stale-if-error (an upstream failure) are both allowed.
        return True

    async def upstream_peer(self, session, ctx: RequestCtx) -> HttpPeer:
        cluster = ctx.cluster
        if cluster.breaker is not None:
            why = cluster.breaker.refusal()
            if why is not None:
                raise circuit_open(why)
        backend = cluster.select(session, ctx.tried)
        if backend is None:
            raise Error.explain(ErrorType.http_status(503), f"no ready backend in cluster {cluster.name}")
        ctx.backend = backend
        ctx.tried.append(backend)
        cluster.acquire(backend)
        return cluster.peer(backend)

    def fail_to_connect(self, session, peer, ctx: RequestCtx, e: Error) -> Error:
        # Nothing was sent: any method may move on to the next backend.
        cluster, backend = ctx.cluster, ctx.backend
        cluster.release(backend)
        cluster.report(backend, False)
        if cluster.breaker is not None:
            cluster.breaker.record(False)
        ctx.backend = None
        if len(ctx.tried) <= cluster.retries:
            e.set_retry(True)
        return e

    async def upstream_request_filter(self, session, upstream_request, ctx: RequestCtx) -> None:
        route = ctx.route
        if not route.edits_upstream_request:
            return
        path = route.rewrite(upstream_request.path)
        if path is not None:
            query = upstream_request.query
            upstream_request.set_uri(f"{path}?{query}" if query else path)
        if route.request_rules is not None:
            route.request_rules.apply(upstream_request)
        for hook in route.upstream_request_hooks:
            await hook(session, upstream_request, ctx)

    async def request_body_filter(self, session, body, end_of_stream, ctx: RequestCtx):
        if body and ctx.body_limit is not None:
            ctx.body_limit.add(len(body))
        for hook in ctx.route.request_body_hooks:
            await hook(session, body, end_of_stream, ctx)
        return None

    async def response_filter(self, session, upstream_response, ctx: RequestCtx) -> None:
        route = ctx.route
        backend = ctx.backend
        if backend is not None:
            cluster, status = ctx.cluster, upstream_response.status
            cluster.report(backend, status not in _FAILED_STATUS)
            if cluster.breaker is not None:
                cluster.breaker.record(status < 500)
        for hook in route.response_hooks:
            await hook(session, upstream_response, ctx)
        if route.response_rules is not None:
            route.response_rules.apply(upstream_response)

    async def fail_to_proxy(self, session, e: Error, ctx: RequestCtx) -> FailToProxy:
        if e.esource is ErrorSource.UPSTREAM and ctx.backend is not None:
            ctx.cluster.report(ctx.backend, False)
            if ctx.cluster.breaker is not None:
                ctx.cluster.breaker.record(False)
        code = 504 if e.etype in _TIMEOUTS and e.esource is ErrorSource.UPSTREAM else default_error_status(e)
        if code > 0:
            # Like the default: the client connection stays when that is safe.
            await session.respond_error(code, keepalive=True)
        route, backend = ctx.route, ctx.backend
        self.errors.append({"when": time.time(), "route": route.name if route is not None else None,
                            "status": code, "backend": str(backend.addr) if backend is not None else None,
                            "cause": str(e)})
        return FailToProxy(code, code > 0)

    async def logging(self, session, e: Optional[Error], ctx: RequestCtx) -> None:
        if ctx.backend is not None:
            ctx.cluster.release(ctx.backend)
        for guard in ctx.guards:
            guard.release()
        route = ctx.route
        if route is not None:
            for hook in route.logging_hooks:
                await hook(session, e, ctx)
