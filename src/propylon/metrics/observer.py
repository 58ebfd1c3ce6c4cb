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
from collections import deque
from typing import Any, Optional

from prometheus_client import REGISTRY, CollectorRegistry

from .access_log import AccessLogConfig, AccessLogWriter
from .builtin import BuiltinMetrics
from .record import TRACE_HEADER, JsonLines, RecordSettings, RequestRecord, combined_line
from .tracing import otel_tracer

try:  # the compiled build's line encoder (the same bytes as JsonLines.batch)
    from .json_batch import JsonBatch
except ImportError:
    JsonBatch = None

__all__ = ["Observability", "RequestRecord", "TRACE_HEADER"]


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
      ``trace_sample`` fraction of requests: the proxy's hooks that ran with their
      start and duration, each upstream attempt (peer, reused connection, connect
      and first-byte times, error), the phase the request ended in and the final
      status, logged as one JSON line on ``propylon.trace`` (at WARNING, so the
      default level shows it); the last ``trace_keep`` are kept in
      ``recent_traces``, which ``prometheus_http_service(traces=obs)`` serves at
      ``/traces`` to the token's holder. Only a traced request is timed; with
      tracing on, another costs one attribute test.

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
            # the line is made by the encoder on the loop, else by the writer thread.
            if access_log.format == "combined":
                self.access_log = AccessLogWriter(access_log, combined_line)
            else:
                json_lines = JsonLines(access_log.fields)
                if JsonBatch is not None:  # compiled: each line made as its request ends
                    self.access_log = AccessLogWriter(access_log, json_lines.line,
                                                      encoder=JsonBatch(json_lines))
                else:
                    self.access_log = AccessLogWriter(access_log, json_lines.line, json_lines.batch)
        self.tracer = None
        if otel is not False:
            self.tracer = otel_tracer(None if otel is True else otel)
            if self.tracer is None:
                raise ValueError("otel: True needs the opentelemetry-sdk package (pip install opentelemetry-sdk)")
        self._start_records()

    def _start_records(self) -> None:
        # What each request's record reads, and the service's per-upstream stats.
        self.records = RecordSettings(self, self.service)
        if self.metrics is not None:
            self.metrics.stat_lists.append(self.records.all_stats)
        # The engine calls request_start per request: the compiled one, without a
        # Python frame of this class in between.
        self.request_start = self.records.request_start  # type: ignore[method-assign]

    def for_service(self, service: str) -> "Observability":
        """The same metrics, access log and settings under another ``service`` label."""
        other = object.__new__(Observability)
        other.__dict__.update(self.__dict__)
        other.service = service
        other._start_records()
        return other

    def trace_access(self, authorization: Optional[bytes]) -> bool:
        """Whether an ``Authorization`` value shows the trace token (``Bearer <token>``);
        never when no token is configured."""
        if self.trace_token is None or authorization is None:
            return False
        return hmac.compare_digest(authorization, b"Bearer " + self.trace_token)

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

    @property
    def upstream_in_use(self) -> int:
        """Upstream connections this service's requests hold right now (this worker)."""
        return sum(st.in_use for st in list(self.records.all_stats))

    def close(self) -> None:
        """Write out what is buffered (the service is stopping)."""
        if self.access_log is not None:
            self.access_log.close()
        if self.metrics is not None:
            self.metrics.flush_now()

    def request_start(self, session: Any) -> RequestRecord:
        """A new request's record (``session.observation``)."""
        return self.records.request_start(session)
