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

import hmac
import json
import logging
from bisect import bisect_left
from collections import deque
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from random import random
from time import perf_counter, time
from typing import Any, Callable, Optional

from prometheus_client import REGISTRY, CollectorRegistry

from .access_log import FIELDS, AccessLogConfig, AccessLogWriter, clf_quote, clf_time, iso_time
from .builtin import DURATION_BUCKETS, BuiltinMetrics, Histogram, method_label, status_class
from .tracing import OtelSpans, TraceContext, new_request_id, otel_tracer, valid_request_id

__all__ = ["Observability", "RequestRecord"]

_X_REQUEST_ID = b"x-request-id"
_X_REQUEST_ID_WIRE = b"X-Request-Id"
_TRACEPARENT = b"traceparent"
#: the request header that asks for a per-request trace (its value: the trace token)
TRACE_HEADER = b"x-propylon-trace"

trace_log = logging.getLogger("propylon.trace")


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
    * ``trace_token`` (None), ``trace_sample`` (0.0), ``trace_keep`` (0): a per-request
      trace, for a request carrying ``X-Propylon-Trace: <trace_token>`` (never
      honoured without a token; the header does not go upstream) or for a
      ``trace_sample`` fraction of requests: each upstream attempt (peer, reused
      connection, connect and first-byte times, error), the phase the request ended
      in and the final status, logged as one JSON line on ``propylon.trace`` (at
      WARNING, so the default level shows it); the last ``trace_keep`` are kept in
      ``recent_traces``. Off, it costs a request one attribute test.

    One ``Observability`` serves one proxy service; :meth:`for_service` gives
    another service its own label while sharing the metrics and the access log.
    """

    def __init__(self, conf: Any = None, *, service: str = "proxy", metrics: bool = True,
                 access_log: Any = None, request_id: bool = True, trace_context: bool = False,
                 otel: Any = False, registry: Optional[CollectorRegistry] = None,
                 metrics_dir: Optional[str] = None, trace_token: Optional[str] = None,
                 trace_sample: float = 0.0, trace_keep: int = 0) -> None:
        self.service = service
        if trace_token is not None and (not isinstance(trace_token, str) or len(trace_token) < 8):
            raise ValueError("trace_token: must be a string of at least 8 characters")
        if not 0.0 <= trace_sample <= 1.0:
            raise ValueError(f"trace_sample: must be between 0 and 1, got {trace_sample!r}")
        self.trace_token = trace_token.encode() if trace_token is not None else None
        self.trace_sample = trace_sample
        self.tracing = self.trace_token is not None or trace_sample > 0
        #: the last ``trace_keep`` request traces (dicts), newest last
        self.recent_traces: deque = deque(maxlen=max(0, trace_keep))
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
        self.access_log: Optional[AccessLogWriter] = None
        if access_log is not None:
            # The loop hands the writer a row per request (see RequestRecord.finish);
            # the writer thread makes the lines with this formatter.
            self.access_log = AccessLogWriter(access_log, combined_line if access_log.format == "combined"
                                              else json_line_builder(access_log.fields))
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

    __slots__ = ("obs", "service", "session", "start", "request_id", "trace", "spans", "attempts",
                 "peer_label", "attempt_start", "connected_at", "reused", "attempt_error",
                 "upstream_time", "attempt_open", "traceparent_set", "steps")

    def __init__(self, obs: Observability, session: Any) -> None:
        self.obs = obs
        #: the ``service`` label and access-log field of this request; a proxy may
        #: narrow it once it knows more (a gateway sets its route's name), always to
        #: a name from a bounded set
        self.service = obs.service
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
        self.steps: Optional[list] = None
        if obs.tracing:
            self._trace_wanted(obs, session.req_header.headers)
        if obs.request_id or obs.trace_context:
            self._headers_in(obs, session.req_header.headers)

    def _trace_wanted(self, obs: Observability, headers: Any) -> None:
        """Start this request's trace when it shows the token or is sampled."""
        value = headers.get_bytes(TRACE_HEADER)
        if value is not None:
            headers.remove(TRACE_HEADER)  # the token is ours: it never goes upstream
            if obs.trace_token is not None and hmac.compare_digest(value, obs.trace_token):
                self.steps = []
                return
        if obs.trace_sample and random() < obs.trace_sample:
            self.steps = []

    def _headers_in(self, obs: Observability, headers: Any) -> None:
        if obs.request_id:
            rid = headers.get_bytes(_X_REQUEST_ID)
            if rid is None:
                # A made id is 32 hex digits: nothing in it for the header's checks to
                # refuse, so the field goes straight in.
                self.request_id = new_request_id()
                headers.fields.append((_X_REQUEST_ID, _X_REQUEST_ID_WIRE, self.request_id.encode()))
            elif valid_request_id(rid):
                self.request_id = rid.decode("ascii")
            else:
                self.request_id = new_request_id()
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
            metrics.count(metrics.retries, (self.service, self.peer_label))
        self.attempts += 1
        self.attempt_open = True
        self.peer_label = label
        self.reused = None
        self.attempt_error = None
        self.attempt_start = perf_counter()
        if self.steps is not None:
            self.steps.append({"attempt": self.attempts, "peer": label,
                               "at_ms": _ms(self.attempt_start - self.start)})
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
        if self.steps is not None:
            step = self.steps[-1]
            step["reused"] = reused
            if not reused:
                step["connect_ms"] = _ms(now - self.attempt_start)
        obs = self.obs
        obs.upstream_in_use += 1
        metrics = obs.metrics
        if metrics is not None:
            labels = (self.service, self.peer_label)
            if reused:  # the usual case, inline
                series = metrics.reused
                series[labels] = series.get(labels, 0) + 1
            else:
                metrics.count(metrics.opened, labels)
                metrics.observe(metrics.connect_times, labels, now - self.attempt_start)

    def upstream_response(self, resp: Any) -> None:
        """The upstream's response head arrived (before any response hook)."""
        metrics = self.obs.metrics
        if metrics is not None:
            took = perf_counter() - self.connected_at
            key = (self.service, self.peer_label)
            hist = metrics.header_times.get(key)
            if hist is None:
                hist = metrics.header_times[key] = Histogram()
            hist.counts[bisect_left(DURATION_BUCKETS, took)] += 1
            hist.sum += took
        if self.steps is not None:
            self.steps[-1].update(status=resp.status, first_byte_ms=_ms(perf_counter() - self.connected_at))
        if self.request_id is not None:
            # The id was checked (or made) on the way in; an upstream's own id is replaced.
            headers = resp.headers
            if _X_REQUEST_ID in headers:
                headers.insert(_X_REQUEST_ID, self.request_id.encode())
            else:
                headers.fields.append((_X_REQUEST_ID, _X_REQUEST_ID_WIRE, self.request_id.encode()))

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
        if self.steps is not None:
            step = self.steps[-1]
            step["ms"] = _ms(perf_counter() - self.attempt_start)
            if error is not None:
                step["error"] = str(error)

    # --- the end --------------------------------------------------------------------------------
    def finish(self, ctx: Any, error: Optional[BaseException]) -> None:
        """The request is over (after the ``logging`` hook)."""
        obs = self.obs
        if self.attempt_open:
            self.upstream_done(error)
        duration = perf_counter() - self.start
        session = self.session
        ds = session.downstream
        resp = ds.written_head
        status = resp.status if resp is not None else 0
        if error is not None and error is not self.attempt_error:
            self._count_error(error)
        sent = getattr(ds, "body_bytes_sent", 0)
        received = getattr(ds, "body_bytes_read", 0)
        metrics = obs.metrics
        if metrics is not None:
            svc = self.service
            upstream = self.peer_label or "none"
            req = session.req_header
            series = metrics.requests
            key = (svc, method_label(req.method_bytes), status_class(status), upstream)
            series[key] = series.get(key, 0) + 1
            key = (svc, upstream)
            hist = metrics.durations.get(key)
            if hist is None:
                hist = metrics.durations[key] = Histogram()
            hist.counts[bisect_left(DURATION_BUCKETS, duration)] += 1
            hist.sum += duration
            if sent:
                series = metrics.sent
                series[(svc,)] = series.get((svc,), 0) + sent
            if received:
                series = metrics.received
                series[(svc,)] = series.get((svc,), 0) + received
        if obs.access_log is not None:
            # Raw values only (see access_row): the writer thread makes the line.
            obs.access_log.write((time(), session.client_addr, session.req_header, status, sent, received,
                                  duration, self.upstream_time if self.attempts else None, self.peer_label,
                                  self.attempts, error, self.request_id, self.service))
        if self.spans is not None:
            self.spans.end(status, error)
        if self.steps is not None:
            self._emit_trace(status, duration, error)
        # The session refers to this record too: break the cycle, so the request's
        # objects are freed now rather than by the cyclic garbage collector.
        self.session = None

    def _emit_trace(self, status: int, duration: float, error: Optional[BaseException]) -> None:
        session = self.session
        req = session.req_header
        record = {"service": self.service, "request_id": self.request_id, "method": req.method,
                  "path": req.path, "status": status, "duration_ms": _ms(duration),
                  "phase": getattr(session, "phase", None), "attempts": self.steps,
                  "error": None if error is None else str(error)}
        self.obs.recent_traces.append(record)
        trace_log.warning("trace %s", json.dumps(record, separators=(",", ":")))

    def _count_error(self, error: BaseException) -> None:
        metrics = self.obs.metrics
        if metrics is None:
            return
        etype = getattr(error, "etype", None)
        source = getattr(error, "esource", None)
        metrics.count(metrics.errors, (self.service,
                                       etype.name if etype is not None else type(error).__name__,
                                       str(source).lower() if source is not None and str(source) else "unset"))



# --- access-log lines, made in the writer thread ----------------------------------------------
# A row (RequestRecord.finish) holds, by index: 0 the wall-clock end time, 1 the client
# address, 2 the request head, 3 the status, 4 body bytes sent, 5 body bytes received,
# 6 the duration, 7 the upstream time (None: no attempt), 8 the upstream label,
# 9 the attempts, 10 the error or None, 11 the request id, 12 the service.


def _client(addr: Any) -> Optional[str]:
    if addr is None:
        return None
    return addr[0] if isinstance(addr, tuple) else str(addr)


def _header(req: Any, name: bytes) -> Optional[str]:
    value = req.headers.get_bytes(name)
    return None if value is None else value.decode("latin-1")


def combined_line(r: tuple) -> str:
    """nginx's ``combined`` line of a row."""
    req = r[2]
    major, minor = req.version
    return (f'{_client(r[1]) or "-"} - - [{clf_time(r[0])}] '
            f'"{clf_quote(req.method)} {clf_quote(req.uri)} HTTP/{major}.{minor}" '
            f'{r[3]} {r[4]} "{clf_quote(_header(req, b"referer"))}" '
            f'"{clf_quote(_header(req, b"user-agent"))}"')


def _json_text(value: Optional[str]) -> str:
    return "null" if value is None else encode_basestring(value)


# Each access-log field as (its piece of a %-template, the expression giving the
# piece's value from the row ``r`` and its request head ``q``); see json_line_builder.
_JSON_FIELDS = {
    "time": ('"%s"', "iso_time(r[0])"),
    "client_addr": ("%s", "text(client(r[1]))"),
    "method": ("%s", "enc(q.method)"),
    "path": ("%s", "enc(q.path)"),
    "status": ("%d", "r[3]"),
    "bytes_sent": ("%d", "r[4]"),
    "bytes_received": ("%d", "r[5]"),
    "duration": ("%.6f", "r[6]"),
    "upstream_duration": ("%s", "'null' if r[7] is None else '%.6f' % r[7]"),
    "upstream_addr": ("%s", "text(r[8])"),
    "retries": ("%d", "r[9] - 1 if r[9] else 0"),
    "error": ("%s", "'null' if r[10] is None else enc(str(r[10]))"),
    "request_id": ("%s", "text(r[11])"),
    "user_agent": ("%s", "text(header(q, b'user-agent'))"),
    "referer": ("%s", "text(header(q, b'referer'))"),
    "service": ("%s", "enc(r[12])"),
}
assert set(_JSON_FIELDS) == set(FIELDS)


def json_line_builder(fields: tuple[str, ...]) -> Callable[[tuple], str]:
    """The function that makes one JSON access-log line with ``fields`` from a row.

    It is compiled once from the pieces above into one %-template and one tuple of
    values, so a line pays neither a call per field nor the work of the fields not
    chosen.
    """
    template = "{" + ",".join(f'"{name}":{_JSON_FIELDS[name][0]}' for name in fields) + "}"
    values = ", ".join(_JSON_FIELDS[name][1] for name in fields)
    source = ("def line(r):\n"
              "    q = r[2]\n"
              f"    return {template.replace('%%', '%%%%')!r} % ({values},)\n")
    namespace = {"iso_time": iso_time, "text": _json_text, "enc": encode_basestring,
                 "client": _client, "header": _header}
    exec(compile(source, "<access log fields>", "exec"), namespace)
    return namespace["line"]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _plain_label(address: Any) -> str:
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return f"unix:{address}"
