"""The admin API and the dashboard, served by the admin listener.

Everything under ``/api/`` answers JSON; ``/`` and ``/static/`` serve the dashboard
from files in the package (no build step, nothing fetched from elsewhere). When
``admin.token`` is set, every API call needs ``Authorization: Bearer TOKEN``; the
listener refuses to start off loopback without one (checked with the file).

A change (PUT, rollback) is validated and built first, applied to this process, then
written to the gateway file, which keeps it the source of truth: other worker
processes pick it up from there (they watch the file). A JSON document sent to
``PUT /api/config`` is merged into the file with ruamel.yaml's round trip, so the
comments and the order of what did not change stay as they were.
"""

from __future__ import annotations

import asyncio
import difflib
import hmac
import io
import json
import logging
import mimetypes
import os
import time
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

from ..apps.base import ListeningApp
from ..protocols.http.small_response import small_response_header
from ..protocols.http.v1.server import H1ServerConnection, HttpServerOptions
from ..protocols.http.v1.server_session import H1ServerSession
from ..shutdown import ShutdownWatch
from ..services.listening import Service
from .config import GatewayConfigError
from .config.models import AdminConf
from .runtime import Gateway
from .state import write_atomically

__all__ = ["AdminApp", "admin_service", "merge_document", "metrics_figures"]

log = logging.getLogger("propylon.gateway.admin")

STATIC_DIR = os.path.join(os.path.dirname(__file__), "dashboard")
MAX_BODY = 1 << 20


class _Reply(Exception):
    """Ends a handler with this status and JSON body."""

    def __init__(self, status: int, body: Any, headers: Optional[dict] = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


def merge_document(text: str, document: Any) -> str:
    """``text`` (YAML) changed to say ``document``, keeping comments, quoting and the
    order of keys that stay; keys that go are removed, new ones appended."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(text)
    data = _merge(data, document)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _merge(node: Any, new: Any) -> Any:
    if isinstance(node, dict) and isinstance(new, dict):
        for key in [k for k in node if k not in new]:
            del node[key]
        for key, value in new.items():
            node[key] = _merge(node[key], value) if key in node else value
        return node
    if isinstance(node, list) and isinstance(new, list):
        for i, value in enumerate(new):
            if i < len(node):
                node[i] = _merge(node[i], value)
            else:
                node.append(value)
        del node[len(new):]
        return node
    return new


def _problems(e: GatewayConfigError) -> list[dict]:
    return [{"path": p.path, "message": p.message} for p in e.problems]


class AdminApp(ListeningApp):
    """The admin API over HTTP/1.1 (see the module docstring)."""

    def __init__(self, gateway: Gateway, conf: AdminConf) -> None:
        self.gateway = gateway
        self.conf = conf
        self._token = f"Bearer {conf.token}".encode() if conf.token else None
        self._connections: set = set()
        self._routes: dict[tuple[str, str], Callable] = {
            ("GET", "/api/config"): self.get_config,
            ("PUT", "/api/config"): self.put_config,
            ("POST", "/api/validate"): self.validate,
            ("GET", "/api/routes"): self.get_routes,
            ("GET", "/api/clusters"): self.get_clusters,
            ("GET", "/api/listeners"): self.get_listeners,
            ("GET", "/api/workers"): self.get_workers,
            ("GET", "/api/history"): self.get_history,
            ("POST", "/api/rollback"): self.rollback,
            ("GET", "/api/stats"): self.get_stats,
            ("POST", "/api/cache/purge"): self.cache_purge,
        }

    # --- plumbing -------------------------------------------------------------------------
    def protocol_factory(self, shutdown: ShutdownWatch) -> Callable[[], asyncio.BaseProtocol]:
        opts = HttpServerOptions()
        return lambda: H1ServerConnection(self._handle, shutdown, opts, self._connections)

    async def wait_drained(self) -> None:
        while self._connections:
            for conn in list(self._connections):
                conn.close_if_idle()
            await asyncio.sleep(0.05)

    async def _handle(self, ds: H1ServerSession) -> bool:
        req = ds.req
        path, _, query = req.uri.partition("?")
        try:
            if path.startswith("/api/"):
                if self._token is not None:
                    given = req.headers.get_bytes(b"authorization") or b""
                    if not hmac.compare_digest(given, self._token):
                        raise _Reply(401, {"error": "a bearer token is required"},
                                     {"WWW-Authenticate": 'Bearer realm="propylon admin"'})
                handler = self._routes.get((req.method, path))
                if handler is None:
                    allowed = sorted(m for m, p in self._routes if p == path)
                    if allowed:
                        raise _Reply(405, {"error": f"use {', '.join(allowed)}"}, {"Allow": ", ".join(allowed)})
                    raise _Reply(404, {"error": f"no such API: {path}"})
                params = {k: v[-1] for k, v in parse_qs(query).items()}
                body = await self._read_body(ds) if req.method in ("PUT", "POST") else b""
                raise _Reply(200, await handler(ds, params, body))
            self._static(ds, path)
        except _Reply as r:
            data = json.dumps(r.body, indent=1).encode() + b"\n"
            self._send(ds, r.status, data, "application/json", r.headers)
        except Exception:  # a defect: answer 500 without details, log them
            log.exception("admin API %s %s failed", req.method, path)
            self._send(ds, 500, b'{"error": "internal error, see the log"}\n', "application/json", {})
        await ds.drain()
        return ds.keepalive

    @staticmethod
    async def _read_body(ds: H1ServerSession) -> bytes:
        parts, size = [], 0
        while True:
            chunk = await ds.read_body()
            if chunk is None:
                return b"".join(parts)
            size += len(chunk)
            if size > MAX_BODY:
                raise _Reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
            parts.append(chunk)

    @staticmethod
    def _send(ds: H1ServerSession, status: int, body: bytes, ctype: str, headers: dict) -> None:
        resp = small_response_header(status, body, ctype, {b"Cache-Control": b"no-store", **headers})
        ds.write_header(resp, end_of_stream=ds.is_head)
        if not ds.is_head:
            ds.write_body(body)
            ds.finish()

    def _static(self, ds: H1ServerSession, path: str) -> None:
        if ds.req.method not in ("GET", "HEAD"):
            raise _Reply(405, {"error": "use GET"}, {"Allow": "GET, HEAD"})
        name = "index.html" if path in ("/", "/index.html") else path[len("/static/"):] \
            if path.startswith("/static/") else None
        if name is None or "/" in name or name.startswith("."):
            raise _Reply(404, {"error": f"not found: {path}"})
        try:
            with open(os.path.join(STATIC_DIR, name), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise _Reply(404, {"error": f"not found: {path}"}) from None
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        self._send(ds, 200, data, ctype, {})

    def _who(self, ds: H1ServerSession) -> str:
        digest = ds.digest
        peer = digest.socket.peer_ip if digest is not None else None
        return f"admin API from {peer}" if peer else "admin API"

    # --- config ---------------------------------------------------------------------------
    async def get_config(self, ds, params, body) -> dict:
        gw = self.gateway
        return {"version": gw.current.version, "path": gw.path, "text": gw.text}

    def _candidate_text(self, ds: H1ServerSession, body: bytes) -> str:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Reply(400, {"errors": [{"path": "", "message": "the body is not UTF-8"}]}) from None
        ctype = (ds.req.headers.get("content-type") or "").lower()
        if ctype.startswith("application/json"):
            try:
                document = json.loads(text)
            except ValueError as e:
                raise _Reply(400, {"errors": [{"path": "", "message": f"invalid JSON: {e}"}]}) from None
            return merge_document(self.gateway.text, document)
        return text

    async def _check(self, text: str) -> Any:
        try:
            return await asyncio.to_thread(self.gateway.check, text)
        except GatewayConfigError as e:
            raise _Reply(400, {"errors": _problems(e)}) from None

    def _diffs(self, candidate: Any) -> dict:
        from .runtime import assemble
        from .serve import routing_table

        old = routing_table(self.gateway.current) + "\n"
        # A preview snapshot: its clusters are new objects whose loops never start.
        new = routing_table(assemble(candidate.prepared, 0, None)) + "\n"
        return {"routes_diff": "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                            "running", "candidate")),
                "file_diff": "".join(difflib.unified_diff(self.gateway.text.splitlines(True),
                                                          candidate.text.splitlines(True), "running", "candidate"))}

    async def validate(self, ds, params, body) -> dict:
        candidate = await self._check(self._candidate_text(ds, body))
        return {"ok": True, "errors": [], **self._diffs(candidate)}

    async def put_config(self, ds, params, body) -> dict:
        text = self._candidate_text(ds, body)
        if params.get("dry_run") not in (None, "", "0", "false"):
            candidate = await self._check(text)
            return {"ok": True, "dry_run": True, **self._diffs(candidate)}
        return await self._apply(text, self._who(ds))

    async def _apply(self, text: str, who: str) -> dict:
        gw = self.gateway
        before = gw.text
        problems = await gw.reload(text=text, who=who)
        if problems:
            raise _Reply(400, {"errors": [{"path": p.path, "message": p.message} for p in problems]})
        await asyncio.to_thread(write_atomically, gw.path, text)  # type: ignore[arg-type]
        diff = "".join(difflib.unified_diff(before.splitlines(True), text.splitlines(True), "before", "after"))
        return {"ok": True, "version": gw.current.version, "file_diff": diff}

    async def get_history(self, ds, params, body) -> dict:
        state = self.gateway.state
        entries = await asyncio.to_thread(state.history) if state is not None else []
        wanted = params.get("version")
        if wanted is not None:
            entry = next((e for e in entries if str(e.version) == wanted), None)
            if entry is None:
                raise _Reply(404, {"error": f"no version {wanted} in the history"})
            return {**entry.summary(), "text": entry.text}
        return {"current": self.gateway.current.version,
                "versions": [e.summary() for e in reversed(entries)]}

    async def rollback(self, ds, params, body) -> dict:
        wanted = params.get("version")
        if wanted is None and body:
            try:
                wanted = str(json.loads(body).get("version"))
            except (ValueError, AttributeError):
                pass
        state = self.gateway.state
        entry = state.entry(int(wanted)) if state is not None and wanted and wanted.isdigit() else None
        if entry is None:
            raise _Reply(404, {"error": f"no version {wanted} in the history"})
        return await self._apply(entry.text, f"{self._who(ds)}: rollback to version {entry.version}")

    # --- the live state -------------------------------------------------------------------
    async def get_routes(self, ds, params, body) -> dict:
        from .serve import routes_data, routing_table

        snap = self.gateway.current
        return {"version": snap.version, "table": routing_table(snap), "routes": routes_data(snap)}

    async def get_listeners(self, ds, params, body) -> dict:
        conf = self.gateway.current.conf
        serving = self.gateway.listeners
        return {"listeners": [{"name": li.name, "address": li.address, "protocol": li.protocol,
                               "h2": li.h2, "h2c": li.h2c, "serving": li.name in serving}
                              for li in conf.listeners]}

    async def get_clusters(self, ds, params, body) -> dict:
        out = []
        for name, cluster in self.gateway.current.clusters.items():
            weights = {b.addr: b.weight for b in cluster.prepared.backends}
            backends = [{"address": row.backend.addr, "weight": row.backend.weight, "healthy": row.healthy,
                         "enabled": row.enabled, "ready": row.healthy and row.enabled,
                         "last_error": str(row.last_error) if row.last_error else None}
                        for row in cluster.lb.backends.health_snapshot()]
            out.append({"name": name, "selection": cluster.conf.selection,
                        "health_check": cluster.conf.health_check is not None,
                        "backends": backends or [{"address": a, "weight": w, "healthy": None, "enabled": True,
                                                  "ready": None, "last_error": None}
                                                 for a, w in weights.items()]})
        return {"clusters": out}

    async def get_workers(self, ds, params, body) -> dict:
        state = self.gateway.state
        workers = await asyncio.to_thread(state.workers) if state is not None else []
        return {"answered_by": os.getpid(), "workers": workers}

    async def get_stats(self, ds, params, body) -> dict:
        """The dashboard's figures, from the built-in metrics (every worker's, summed) when
        ``metrics`` is on, else none; and this worker's recent proxy errors."""
        gateway = self.gateway
        out = {"pid": os.getpid(), "version": gateway.current.version, "when": time.time(),
               "errors": list(gateway.recent_errors)}
        metrics = gateway.observer.metrics if gateway.observer is not None else None
        if metrics is None:
            return {**out, "source": None, "buckets": [], "routes": {}, "backends": {}}
        counters, histograms, _ = await asyncio.to_thread(metrics.totals)
        return {**out, **metrics_figures(counters, histograms)}

    async def cache_purge(self, ds, params, body) -> dict:
        """Purge the cache of the live routes: ``route`` (default: every route with a
        cache), then ``host`` + ``path`` (one request target), or ``prefix`` (targets
        starting with it, within ``host`` if given), or everything. From a JSON body or
        the query string."""
        from .plugins.caching import purge

        if body.strip():
            try:
                args = json.loads(body)
            except ValueError as e:
                raise _Reply(400, {"error": f"the body is not JSON: {e}"}) from None
            if not isinstance(args, dict):
                raise _Reply(400, {"error": "the body must be a JSON object"})
        else:
            args = params
        unknown = sorted(set(args) - {"route", "host", "path", "prefix"})
        if unknown:
            raise _Reply(400, {"error": f"unknown field {unknown[0]!r} (known: route, host, path, prefix)"})
        if any(v is not None and not isinstance(v, str) for v in args.values()):
            raise _Reply(400, {"error": "route, host, path and prefix are strings"})
        route, host, path, prefix = (args.get(k) for k in ("route", "host", "path", "prefix"))
        if path is not None and (host is None or prefix is not None):
            raise _Reply(400, {"error": "'path' needs 'host' (the Host clients send) and excludes 'prefix'"})
        cached = [r for r in self.gateway.current.routes if r.cache is not None]
        if route is not None:
            cached = [r for r in cached if r.name == route]
            if not cached:
                raise _Reply(404, {"error": f"no route {route!r} with a cache"})
        stores = list({id(r.cache.store): r.cache.store for r in cached}.values())
        purged = await purge([r.cache for r in cached], host.lower() if host else host, path, prefix)
        return {"purged": purged, "routes": [r.name for r in cached], "pid": os.getpid(),
                "per_process": sorted({s.kind for s in stores} - {"redis"})}


def metrics_figures(counters: dict, histograms: dict) -> dict:
    """Per route (the ``service`` label) and per backend (``upstream``): cumulative
    requests, errors (5xx, or no response at all) and, per route, the request duration
    histogram (non-cumulative counts, the last one above every bound)."""
    from ..metrics.builtin import DURATION_BUCKETS

    routes: dict = {}
    backends: dict = {}
    for (service, _method, status_class, upstream), n in counters["propylon_requests"].items():
        failed = n if status_class in ("5xx", "none") else 0
        route = routes.setdefault(service, {"requests": 0, "errors": 0, "latency": [0] * (len(DURATION_BUCKETS) + 1)})
        route["requests"] += n
        route["errors"] += failed
        if upstream != "none":  # answered without going upstream
            backend = backends.setdefault(upstream, {"requests": 0, "errors": 0})
            backend["requests"] += n
            backend["errors"] += failed
    for (service, _upstream), h in histograms["propylon_request_duration_seconds"].items():
        route = routes.get(service)
        if route is not None:
            route["latency"] = [a + b for a, b in zip(route["latency"], h.counts)]
    return {"source": "metrics", "buckets": list(DURATION_BUCKETS), "routes": routes, "backends": backends}


def admin_service(gateway: Gateway, conf: AdminConf) -> Service:
    """The admin listener's service (add its endpoint with ``add_tcp``)."""
    return Service("gateway admin", AdminApp(gateway, conf))
