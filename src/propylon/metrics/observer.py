"""``Observability``: built-in metrics, access log, request ids and tracing for a proxy.

Handed to ``http_proxy_service(conf, proxy, observer=Observability(conf, ...))``,
it is called by the request engine at a few points of every request (start, each
upstream attempt, the upstream's response head, the end). The engine records
nothing and calls nothing of this when no observer is set.

Each request gets a :class:`RequestRecord` (``session.observation``), which keeps
the timestamps and the attempt count, and at the end feeds the metrics, the access
log and the spans from it.
"""

from __future__ import annotations

from json.encoder import encode_basestring  # type: ignore[attr-defined]
from time import perf_counter, time
from typing import Any, Callable, Optional

from prometheus_client import REGISTRY, CollectorRegistry

from .access_log import FIELDS, AccessLogConfig, AccessLogWriter, clf_quote, clf_time, iso_time
from .builtin import BuiltinMetrics, method_label, status_class
from .tracing import OtelSpans, TraceContext, new_request_id, otel_tracer, valid_request_id

__all__ = ["Observability", "RequestRecord"]

_X_REQUEST_ID = b"x-request-id"
_TRACEPARENT = b"traceparent"


class Observability:
    """What a proxy service reports about its requests. Everything is optional:

    * ``metrics`` (True): the built-in ``propylon_*`` metrics, registered in
      ``registry`` (prometheus_client's default, which ``prometheus_http_service()``
      serves). With ``conf.threads`` > 1 the workers' values are summed through
      files in ``metrics_dir`` (default: a new temporary directory).
    * ``access_log``: an :class:`AccessLogConfig` (or a mapping of its fields).
    * ``request_id`` (True): keep or make ``X-Request-Id``, send it upstream and back.
    * ``trace_context`` (False): take part in W3C trace context: ``traceparent`` goes
      upstream with a new span id per attempt (off, the header passes unchanged).
    * ``otel`` (False): OpenTelemetry spans (needs ``opentelemetry-sdk``): True uses
      the global tracer provider, or pass a ``TracerProvider``.
    * ``service``: the ``service`` label and access-log field.

    One ``Observability`` serves one proxy service; :meth:`for_service` gives
    another service its own label while sharing the metrics and the access log.
    """

    def __init__(self, conf: Any = None, *, service: str = "proxy", metrics: bool = True,
                 access_log: Any = None, request_id: bool = True, trace_context: bool = False,
                 otel: Any = False, registry: Optional[CollectorRegistry] = None,
                 metrics_dir: Optional[str] = None) -> None:
        self.service = service
        self.request_id = request_id
        self.trace_context = trace_context or otel is not False
        self.metrics: Optional[BuiltinMetrics] = None
        if metrics:
            workers = getattr(conf, "threads", 1) or 1
            self.metrics = (BuiltinMetrics.for_workers(metrics_dir) if workers > 1
                            else BuiltinMetrics())
            try:
                (registry if registry is not None else REGISTRY).register(self.metrics)
            except ValueError as e:  # prometheus_client: "Duplicated timeseries ..."
                raise ValueError("the propylon_* metrics are already registered: give another service "
                                 "its label with obs.for_service(name), or pass registry=") from e
        if access_log is not None and not isinstance(access_log, AccessLogConfig):
            access_log = AccessLogConfig.from_mapping(access_log)
        self.access_log = AccessLogWriter(access_log) if access_log is not None else None
        # The JSON line writer, made once for the chosen fields (None: combined).
        self.json_line: Optional[Callable] = None
        if access_log is not None and access_log.format == "json":
            self.json_line = json_line_builder(access_log.fields)
        self.tracer = None
        if otel is not False:
            self.tracer = otel_tracer(None if otel is True else otel)
            if self.tracer is None:
                raise ValueError("otel: True needs the opentelemetry-sdk package (pip install opentelemetry-sdk)")
        #: upstream connections this service's requests hold right now (this worker)
        self.upstream_in_use = 0

    def for_service(self, service: str) -> "Observability":
        """The same metrics, access log and settings under another ``service`` label."""
        other = object.__new__(Observability)
        other.__dict__.update(self.__dict__)
        other.service = service
        other.upstream_in_use = 0
        return other

    def limiter_decision(self, limiter: str, allowed: bool) -> None:
        """Count a limiter's decision (``propylon_limiter_decisions_total``)."""
        if self.metrics is not None:
            self.metrics.limiter_decision(limiter, allowed)

    def watch_balancer(self, name: str, balancer: Any) -> None:
        """Expose a load balancer's backend health (``propylon_backend_healthy``)."""
        if self.metrics is not None:
            self.metrics.watch_balancer(name, balancer)

    # --- called by the proxy app and the engine ----------------------------------------------
    def attach(self, app: Any) -> None:
        """The proxy app made its engine (in the worker, loop running): watch its
        connections and pool, start the flush timers and the log writer."""
        if self.metrics is not None:
            self.metrics.gauge_sources.append(lambda: self._gauges(app))
            self.metrics.start_flushing()
        if self.access_log is not None:
            self.access_log.start()

    def _gauges(self, app: Any) -> dict:
        engine = app.engine
        svc = self.service
        return {
            "propylon_downstream_connections": {(svc,): app.open_connections()},
            "propylon_upstream_connections": {(svc, "idle"): len(engine.connector.pool),
                                              (svc, "in_use"): self.upstream_in_use},
        }

    def close(self) -> None:
        """Write out what is buffered (the service is stopping)."""
        if self.access_log is not None:
            self.access_log.close()
        if self.metrics is not None:
            self.metrics.flush_now()

    def request_start(self, session: Any) -> "RequestRecord":
        return RequestRecord(self, session)


class RequestRecord:
    """One request as the observer follows it (``session.observation``)."""

    __slots__ = ("obs", "session", "start", "request_id", "trace", "spans", "attempts",
                 "peer_label", "attempt_start", "connected_at", "reused", "attempt_error",
                 "upstream_time", "attempt_open", "traceparent_set")

    def __init__(self, obs: Observability, session: Any) -> None:
        self.obs = obs
        self.session = session
        self.start = perf_counter()
        self.attempts = 0
        self.peer_label: Optional[str] = None
        self.reused: Optional[bool] = None  # set once the attempt has a connection
        self.attempt_error: Optional[BaseException] = None
        self.upstream_time = 0.0
        self.attempt_open = False
        self.request_id: Optional[str] = None
        self.trace: Optional[TraceContext] = None
        self.spans: Optional[OtelSpans] = None
        self.traceparent_set = False
        if obs.request_id or obs.trace_context:
            self._headers_in(obs, session.req_header.headers)

    def _headers_in(self, obs: Observability, headers: Any) -> None:
        if obs.request_id:
            rid = headers.get_bytes(_X_REQUEST_ID)
            if valid_request_id(rid):
                self.request_id = rid.decode("ascii")
            else:
                self.request_id = new_request_id()
                if rid is None:
                    headers.append(_X_REQUEST_ID, self.request_id.encode())
                else:
                    headers.insert(_X_REQUEST_ID, self.request_id.encode())
        if obs.trace_context:
            incoming = headers.get_bytes(_TRACEPARENT)
            self.traceparent_set = incoming is not None
            self.trace = TraceContext.from_header(incoming, obs.tracer is not None)
            if obs.tracer is not None:
                req = self.session.req_header
                self.spans = OtelSpans(obs.tracer, self.trace, f"{req.method} proxy", {
                    "http.request.method": req.method, "url.path": req.path,
                    "propylon.service": obs.service})

    # --- per upstream attempt ----------------------------------------------------------------
    def upstream_attempt(self, peer: Any) -> None:
        """An attempt starts: ``peer`` was chosen (called before connecting)."""
        metrics = self.obs.metrics
        label = metrics.upstream_label(peer.address) if metrics is not None else _plain_label(peer.address)
        if self.attempts and metrics is not None:
            metrics.count(metrics.retries, (self.obs.service, self.peer_label))
        self.attempts += 1
        self.attempt_open = True
        self.peer_label = label
        self.reused = None
        self.attempt_error = None
        self.attempt_start = perf_counter()
        if self.trace is not None:
            span_id = self.spans.start_attempt(self.attempts, label) if self.spans is not None else None
            value = self.trace.child_header(span_id).encode()
            if self.traceparent_set:
                self.session.req_header.headers.insert(_TRACEPARENT, value)
            else:
                self.session.req_header.headers.append(_TRACEPARENT, value)
                self.traceparent_set = True

    def upstream_connected(self, reused: bool) -> None:
        now = self.connected_at = perf_counter()
        self.reused = reused
        obs = self.obs
        obs.upstream_in_use += 1
        metrics = obs.metrics
        if metrics is not None:
            labels = (obs.service, self.peer_label)
            if reused:
                metrics.count(metrics.reused, labels)
            else:
                metrics.count(metrics.opened, labels)
                metrics.observe(metrics.connect_times, labels, now - self.attempt_start)

    def upstream_response(self, resp: Any) -> None:
        """The upstream's response head arrived (before any response hook)."""
        metrics = self.obs.metrics
        if metrics is not None:
            metrics.observe(metrics.header_times, (self.obs.service, self.peer_label),
                            perf_counter() - self.connected_at)
        if self.request_id is not None:
            resp.headers.insert(_X_REQUEST_ID, self.request_id.encode())

    def upstream_done(self, error: Optional[BaseException]) -> None:
        """The attempt ended (``error`` None: the response was relayed). The engine
        calls it for an attempt it retries; :meth:`finish` closes the last one."""
        if not self.attempt_open:
            return
        self.attempt_open = False
        self.upstream_time += perf_counter() - self.attempt_start
        if self.reused is not None:
            self.obs.upstream_in_use -= 1
        if error is not None:
            self.attempt_error = error
            self._count_error(error)
        if self.spans is not None:
            self.spans.end_attempt(error, self.reused)

    # --- the end --------------------------------------------------------------------------------
    def finish(self, ctx: Any, error: Optional[BaseException]) -> None:
        """The request is over (after the ``logging`` hook)."""
        obs = self.obs
        if self.attempt_open:
            self.upstream_done(error)
        duration = perf_counter() - self.start
        ds = self.session.downstream
        resp = ds.written_head
        status = resp.status if resp is not None else 0
        if error is not None and error is not self.attempt_error:
            self._count_error(error)
        metrics = obs.metrics
        if metrics is not None:
            svc = obs.service
            upstream = self.peer_label or "none"
            metrics.count(metrics.requests, (svc, method_label(self.session.req_header.method_bytes),
                                             status_class(status), upstream))
            metrics.observe(metrics.durations, (svc, upstream), duration)
            sent = getattr(ds, "body_bytes_sent", 0)
            if sent:
                metrics.count(metrics.sent, (svc,), sent)
            received = getattr(ds, "body_bytes_read", 0)
            if received:
                metrics.count(metrics.received, (svc,), received)
        if obs.access_log is not None:
            if obs.json_line is None:
                obs.access_log.write(self._combined_line(status))
            else:
                obs.access_log.write(obs.json_line(self, status, duration, error))
        if self.spans is not None:
            self.spans.end(status, error)
        # The session refers to this record too: break the cycle, so the request's
        # objects are freed now rather than by the cyclic garbage collector.
        self.session = None

    def _count_error(self, error: BaseException) -> None:
        metrics = self.obs.metrics
        if metrics is None:
            return
        etype = getattr(error, "etype", None)
        source = getattr(error, "esource", None)
        metrics.count(metrics.errors, (self.obs.service,
                                       etype.name if etype is not None else type(error).__name__,
                                       str(source).lower() if source is not None and str(source) else "unset"))

    # --- for the access-log fields (see _JSON_FIELDS) --------------------------------------------
    def client(self) -> Optional[str]:
        addr = self.session.client_addr
        if addr is None:
            return None
        return addr[0] if isinstance(addr, tuple) else str(addr)

    def header(self, name: bytes) -> Optional[str]:
        value = self.session.req_header.headers.get_bytes(name)
        return None if value is None else value.decode("latin-1")

    def _combined_line(self, status: int) -> str:
        req = self.session.req_header
        major, minor = req.version
        return (f'{self.client() or "-"} - - [{clf_time(time())}] '
                f'"{clf_quote(req.method)} {clf_quote(req.uri)} HTTP/{major}.{minor}" '
                f'{status} {getattr(self.session.downstream, "body_bytes_sent", 0)} '
                f'"{clf_quote(self.header(b"referer"))}" "{clf_quote(self.header(b"user-agent"))}"')


def _json_text(value: Optional[str]) -> str:
    return "null" if value is None else encode_basestring(value)


def _seconds(value: float) -> str:
    return f"{value:.6f}"


# Each access-log field as a JSON text expression over the record ``r``, its request
# head ``q``, the downstream session ``ds``, the status, the duration ``d`` and the
# error ``e`` (see json_line_builder).
_JSON_FIELDS = {
    "time": "'\"' + iso_time(time()) + '\"'",
    "client_addr": "text(r.client())",
    "method": "enc(q.method)",
    "path": "enc(q.path)",
    "status": "str(status)",
    "bytes_sent": "str(getattr(ds, 'body_bytes_sent', 0))",
    "bytes_received": "str(getattr(ds, 'body_bytes_read', 0))",
    "duration": "seconds(d)",
    "upstream_duration": "seconds(r.upstream_time) if r.attempts else 'null'",
    "upstream_addr": "text(r.peer_label)",
    "retries": "str(max(0, r.attempts - 1))",
    "error": "'null' if e is None else enc(str(e))",
    "request_id": "text(r.request_id)",
    "user_agent": "text(r.header(b'user-agent'))",
    "referer": "text(r.header(b'referer'))",
    "service": "enc(r.obs.service)",
}
assert set(_JSON_FIELDS) == set(FIELDS)


def json_line_builder(fields: tuple[str, ...]) -> Callable[[RequestRecord, int, float, Optional[BaseException]], str]:
    """The function that writes one JSON access-log line with ``fields``.

    It is compiled once from the expressions above into a single ``join``, so a
    request pays neither a call per field nor the work of the fields not chosen.
    """
    parts = ["'{'"]
    for i, name in enumerate(fields):
        if i:
            parts.append("','")
        parts += [repr(f'"{name}":'), _JSON_FIELDS[name]]
    parts.append("'}'")
    source = ("def line(r, status, d, e):\n"
              "    q = r.session.req_header\n"
              "    ds = r.session.downstream\n"
              f"    return ''.join(({', '.join(parts)}))\n")
    namespace = {"iso_time": iso_time, "time": time, "text": _json_text, "enc": encode_basestring,
                 "seconds": _seconds}
    exec(compile(source, "<access log fields>", "exec"), namespace)
    return namespace["line"]


def _plain_label(address: Any) -> str:
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return f"unix:{address}"
