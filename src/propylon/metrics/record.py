"""What the observer does per request: the request's record, the counters of each
upstream it feeds, and the access-log lines made from it.

This is the hot path of an observed proxy, compiled with the rest of it when the
build can (``setup.py``; ``record.pxd`` makes the classes extension types with C
fields). A request costs its record and a few additions to the
:class:`UpstreamStats` of the upstream it went to: no label tuple is built and no
dict is looked up per request. The Prometheus families are made from the stats
only when scraped (``BuiltinMetrics.collect``); the access-log line is made from
the record by :class:`JsonLines` or :func:`combined_line` in the log's writer
thread, or, for the compiled build's JSON lines, in C as the request ends
(``json_batch``).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from json.encoder import encode_basestring as _enc  # type: ignore[attr-defined]
from random import getrandbits, random
from time import gmtime, perf_counter, strftime
from typing import Any, Optional

from ..proxy.observation import Observation
from .access_log import FIELDS, clf_quote, encode_lines
from .tracing import OtelSpans, TraceContext, valid_request_id

try:  # Cython is needed to build the compiled module, not to run the pure one
    import cython
    _COMPILED = cython.compiled
except ImportError:
    _COMPILED = False

__all__ = ["DURATION_BUCKETS", "METHODS", "STATUS_CLASSES", "MAX_UPSTREAM_LABELS", "UpstreamStats",
           "RecordSettings", "RequestRecord", "JsonLines", "combined_line", "upstream_label"]

trace_log = logging.getLogger("propylon.trace")

#: Histogram bounds in seconds, for request, connect and first-byte times.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The ``method`` label values; a method not among the first nine counts as ``OTHER``.
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER")
#: The ``status_class`` label values, by ``status // 100`` (``none``: no response went out).
STATUS_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
#: Distinct upstream addresses given their own label per service; the rest are ``other``.
MAX_UPSTREAM_LABELS = 256

_METHOD_INDEX = {m.encode(): i for i, m in enumerate(METHODS[:-1])}
_JSON_METHODS = {m.encode(): f'"{m}"' for m in METHODS[:-1]}
_OTHER_METHOD = len(METHODS) - 1
_BUCKETS = len(DURATION_BUCKETS) + 1

_X_REQUEST_ID = b"x-request-id"
_X_REQUEST_ID_WIRE = b"X-Request-Id"
_TRACEPARENT = b"traceparent"
#: the request header that asks for a per-request trace (its value: the trace token)
TRACE_HEADER = b"x-propylon-trace"


def _clock() -> float:
    """``perf_counter()``; compiled, the same clock (CLOCK_MONOTONIC) is read in C,
    without a call through Python and a float object (several times cheaper, and a
    request reads it four or five times)."""
    if _COMPILED:
        return _monotonic()
    return perf_counter()


def upstream_label(address: Any) -> str:
    """The label of a peer address: ``host:port``, ``[v6]:port`` or ``unix:path``."""
    if isinstance(address, tuple):
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return f"unix:{address}"


def _bucket(seconds: float) -> int:
    """The histogram bucket of a duration: the first bound it does not exceed (the
    last bucket, +Inf, past them all). A loop rather than ``bisect``: most durations
    fall in the first buckets, and compiled the loop is plain C."""
    i = 0
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return i
        i += 1
    return i


class UpstreamStats:
    """The counters of one upstream of one service (this worker's): requests by
    method and status class (``requests[method * 6 + status class]``), histograms
    as non-cumulative bucket counts (the last is +Inf) and their sums, connections
    opened and reused, retries, body bytes, and connections in use now."""

    __slots__ = ("service", "upstream", "json_label", "requests", "durations", "duration_sum",
                 "connect_times", "connect_sum", "header_times", "header_sum", "opened", "reused",
                 "retries", "sent", "received", "in_use")

    def __init__(self, service: str, upstream: str) -> None:
        self.service = service
        self.upstream = upstream
        self.json_label = _enc(upstream)
        self.requests = [0] * (len(METHODS) * len(STATUS_CLASSES))
        self.durations = [0] * _BUCKETS
        self.connect_times = [0] * _BUCKETS
        self.header_times = [0] * _BUCKETS
        self.duration_sum = self.connect_sum = self.header_sum = 0.0
        self.opened = self.reused = self.retries = self.sent = self.received = self.in_use = 0


class RequestIds:
    """Made request ids: 32 hex digits, a random prefix of this process (made again
    in a forked child) and a counter. Unique, and far cheaper than random bits per
    request; not secret, which a request id need not be.

    The first 30 digits change once in 256 ids: they are made then, and an id is
    them and its last two digits from a table."""

    __slots__ = ("base", "count", "high")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        # A leading 1 bit above the 128 of the id: ``hex`` then always gives "0x1"
        # and 32 digits (a format spec such as "032x" costs several times more).
        self.base = (1 << 128) | (getrandbits(80) << 48)
        self.count = 0
        self.high = b""

    def next(self) -> bytes:
        self.count += 1
        low = self.count & 0xFF
        if low == 0 or not self.high:
            self.high = hex(self.base | (self.count & 0xFFFFFFFFFF00))[3:33].encode()
        return self.high + _HEX2[low]


_HEX2 = tuple(b"%02x" % i for i in range(256))
_ids = RequestIds()
os.register_at_fork(after_in_child=_ids.reseed)


class RecordSettings:
    """What a request's record needs of its ``Observability``, in one place the
    record reads cheaply. ``upstreams`` maps a peer address to its stats (at most
    :data:`MAX_UPSTREAM_LABELS`; more share ``other``); ``all_stats`` lists every
    stats object of the service (the metrics collector reads it)."""

    __slots__ = ("obs", "metrics", "access_log", "tracer", "trace_token", "recent_traces", "service",
                 "upstreams", "all_stats", "no_upstream", "other", "narrowed", "tracing", "request_id",
                 "trace_context", "trace_sample")

    def __init__(self, obs: Any, service: str) -> None:
        self.obs = obs
        self.service = service
        self.metrics = obs.metrics
        self.access_log = obs.access_log
        self.tracer = obs.tracer
        self.trace_token = obs.trace_token
        self.trace_sample = obs.trace_sample
        self.tracing = obs.tracing
        self.recent_traces = obs.recent_traces
        self.request_id = obs.request_id
        self.trace_context = obs.trace_context
        self.upstreams = {}
        self.no_upstream = UpstreamStats(service, "none")
        self.all_stats = [self.no_upstream]
        self.other = None
        # (service, address or None) -> stats, for requests whose record was given
        # another service name (a gateway's route)
        self.narrowed = {}

    def request_start(self, session: Any) -> "RequestRecord":
        """A new request's record."""
        # (made without the call of the class and its argument parsing: compiled, a
        # C allocation and a C call)
        rec = RequestRecord.__new__(RequestRecord)
        rec._begin(self, session)
        return rec

    def stats_for(self, address: Any) -> UpstreamStats:
        """The stats of a peer address (made on its first request)."""
        st = self.upstreams.get(address)
        if st is None:
            if len(self.upstreams) >= MAX_UPSTREAM_LABELS:
                if self.other is None:
                    self.other = UpstreamStats(self.service, "other")
                    self.all_stats.append(self.other)
                return self.other
            st = self.upstreams[address] = UpstreamStats(self.service, upstream_label(address))
            self.all_stats.append(st)
        return st

    def service_stats(self, service: str, address: Any) -> UpstreamStats:
        """The stats of a request narrowed to ``service`` (``address`` None: the
        request had no upstream)."""
        if service == self.service:
            return self.no_upstream if address is None else self.stats_for(address)
        key = (service, address)
        st = self.narrowed.get(key)
        if st is None:
            if len(self.narrowed) >= 16 * MAX_UPSTREAM_LABELS and address is not None:
                key = (service, "other")  # names come from a bounded set; addresses may not
                st = self.narrowed.get(key)
            if st is None:
                st = self.narrowed[key] = UpstreamStats(
                    service, "none" if address is None else "other" if key[1] == "other" else upstream_label(address))
                self.all_stats.append(st)
        return st


class RequestRecord(Observation):
    """One request as the observer follows it (``session.observation``, the
    engine's calls are those of :class:`~propylon.proxy.observation.Observation`);
    after the request it is also the access log's row (see :class:`JsonLines`)."""

    __slots__ = ("settings", "service", "session", "req", "client_addr", "stats", "reused", "attempt_error", "error",
                 "request_id", "trace", "spans", "steps", "hooks_run", "start", "attempt_start", "connected_at",
                 "upstream_time", "end", "attempts", "status", "sent", "received", "attempt_open",
                 "traceparent_set")

    def __init__(self, settings: RecordSettings, session: Any) -> None:
        self._begin(settings, session)

    def _begin(self, settings: RecordSettings, session: Any) -> None:
        self.settings = settings
        #: the ``service`` label and access-log field of this request; a proxy may
        #: narrow it once it knows more (a gateway sets its route's name), always to
        #: a name from a bounded set
        self.service = settings.service
        self.session = session
        self.start = _clock()
        self.req = session.req_header
        self.stats = None
        self.attempts = 0
        self.reused = None  # set once the attempt has a connection
        self.attempt_error = None
        self.error = None
        self.upstream_time = 0.0
        self.attempt_open = False
        self.request_id = None
        self.trace = None
        self.spans = None
        self.traceparent_set = False
        self.steps = None  # a traced request's attempts
        self.hooks_run = None  # and the hooks that ran: (name, start, end)
        if settings.tracing:
            self._trace_wanted(settings, self.req.headers)
        if settings.request_id:
            headers = self.req.headers
            rid = headers.get_bytes(_X_REQUEST_ID)
            if rid is None:
                # A made id is 32 hex digits: nothing in it for the header's checks to
                # refuse, so the field goes straight in.
                self.request_id = rid = _ids.next()
                headers.fields.append((_X_REQUEST_ID, _X_REQUEST_ID_WIRE, rid))
            elif valid_request_id(rid):
                self.request_id = rid
            else:
                self.request_id = rid = _ids.next()
                headers.insert(_X_REQUEST_ID, rid)
        if settings.trace_context:
            self._trace_context(settings, self.req.headers)

    def _trace_wanted(self, settings: RecordSettings, headers: Any) -> None:
        """Start this request's trace when it shows the token or is sampled."""
        value = headers.get_bytes(TRACE_HEADER)
        if value is not None:
            headers.remove(TRACE_HEADER)  # the token is ours: it never goes upstream
            if settings.trace_token is not None and hmac.compare_digest(value, settings.trace_token):
                self._start_trace(settings)
                return
        if settings.trace_sample and random() < settings.trace_sample:
            self._start_trace(settings)

    def _start_trace(self, settings: RecordSettings) -> None:
        self.steps = []
        self.hooks_run = []
        if not settings.request_id:
            # The trace is found by its request's id: a traced request has one even
            # when the service makes none (the response carries it back).
            self.request_id = _ids.next()

    def hook_ran(self, name: str, start: float, end: float) -> None:
        """A traced request's hook ``name`` ran from ``start`` to ``end``
        (``perf_counter``); the engine times the hooks of a traced request only."""
        if self.hooks_run is not None:
            self.hooks_run.append((name, start, end))

    def _trace_context(self, settings: RecordSettings, headers: Any) -> None:
        incoming = headers.get_bytes(_TRACEPARENT)
        self.traceparent_set = incoming is not None
        self.trace = TraceContext.from_header(incoming, settings.tracer is not None)
        if settings.tracer is not None:
            req = self.req
            self.spans = OtelSpans(settings.tracer, self.trace, f"{req.method} proxy", {
                "http.request.method": req.method, "url.path": req.path,
                "propylon.service": settings.service})

    @property
    def peer_label(self) -> Optional[str]:
        """The upstream label of the last attempt (None: no attempt)."""
        return self.stats.upstream if self.stats is not None else None

    # --- per upstream attempt ----------------------------------------------------------
    def upstream_attempt(self, peer: Any) -> None:
        """An attempt starts: ``peer`` was chosen (called before connecting)."""
        settings = self.settings
        if self.service is settings.service:
            st = settings.stats_for(peer.address)
        else:
            st = settings.service_stats(self.service, peer.address)
        if self.attempts:
            self.stats.retries += 1  # counted for the upstream that failed
        self.stats = st
        self.attempts += 1
        self.attempt_open = True
        self.reused = None
        self.attempt_error = None
        self.attempt_start = _clock()
        if self.steps is not None:
            self.steps.append({"attempt": self.attempts, "peer": st.upstream,
                               "at_ms": _ms(self.attempt_start - self.start)})
        if self.trace is not None:
            self._attempt_traceparent()

    def _attempt_traceparent(self) -> None:
        span_id = self.spans.start_attempt(self.attempts, self.stats.upstream) if self.spans is not None else None
        value = self.trace.child_header(span_id).encode()
        if self.traceparent_set:
            self.req.headers.insert(_TRACEPARENT, value)
        else:
            self.req.headers.append(_TRACEPARENT, value)
            self.traceparent_set = True

    def upstream_connected(self, reused: bool) -> None:
        """The attempt has its connection (``reused``: from the pool)."""
        st = self.stats
        st.in_use += 1
        self.reused = reused
        if reused:  # the usual case: no clock read, a pooled connection is there at once
            st.reused += 1
            self.connected_at = self.attempt_start
        else:
            now = self.connected_at = _clock()
            st.opened += 1
            took = now - self.attempt_start
            st.connect_times[_bucket(took)] += 1
            st.connect_sum += took
        if self.steps is not None:
            step = self.steps[-1]
            step["reused"] = reused
            if not reused:
                step["connect_ms"] = _ms(self.connected_at - self.attempt_start)

    def upstream_response(self, resp: Any) -> None:
        """The upstream's response head arrived (before any response hook)."""
        st = self.stats
        took = _clock() - self.connected_at
        st.header_times[_bucket(took)] += 1
        st.header_sum += took
        if self.steps is not None:
            self.steps[-1].update(status=resp.status, first_byte_ms=_ms(took))
        rid = self.request_id
        if rid is not None:
            # The id was checked (or made) on the way in; an upstream's own id is replaced.
            if type(rid) is not bytes:  # a proxy's own id (a gateway plugin sets one)
                rid = str(rid).encode("latin-1")
            headers = resp.headers
            if headers.get_bytes(_X_REQUEST_ID) is not None:
                headers.insert(_X_REQUEST_ID, rid)
            else:
                headers.fields.append((_X_REQUEST_ID, _X_REQUEST_ID_WIRE, rid))

    def upstream_done(self, error: Any) -> None:
        """The attempt ended (``error`` None: the response was relayed). The engine
        calls it for an attempt it retries; :meth:`finish` closes the last one."""
        if self.attempt_open:
            self._attempt_over(error, _clock())

    def _attempt_over(self, error: Any, now: float) -> None:
        self.attempt_open = False
        self.upstream_time += now - self.attempt_start
        if self.reused is not None:
            self.stats.in_use -= 1
        if error is not None:
            self.attempt_error = error
            self._count_error(error)
        if self.spans is not None:
            self.spans.end_attempt(error, self.reused)
        if self.steps is not None:
            step = self.steps[-1]
            step["ms"] = _ms(now - self.attempt_start)
            if error is not None:
                step["error"] = str(error)

    # --- the end ----------------------------------------------------------------------------
    def finish(self, ctx: Any, error: Any) -> None:
        """The request is over (after the ``logging`` hook)."""
        now = self.end = _clock()
        if self.attempt_open:
            self._attempt_over(error, now)
        settings = self.settings
        session = self.session
        ds = session.downstream
        resp = ds.written_head
        status = self.status = resp.status if resp is not None else 0
        if error is not None and error is not self.attempt_error:
            self._count_error(error)
        self.error = error
        # (a downstream of the proxy's own, such as a cache refresh, may count nothing)
        sent = self.sent = getattr(ds, "body_bytes_sent", 0)
        received = self.received = getattr(ds, "body_bytes_read", 0)
        st = self.stats
        if st is None:
            st = settings.no_upstream if self.service is settings.service else settings.service_stats(self.service, None)
        index = _METHOD_INDEX.get(self.req.method_bytes, _OTHER_METHOD) * 6
        if 100 <= status < 600:
            index += status // 100
        st.requests[index] += 1
        duration = now - self.start
        st.durations[_bucket(duration)] += 1
        st.duration_sum += duration
        st.sent += sent
        st.received += received
        if self.spans is not None:
            self.spans.end(status, error)
        if self.steps is not None:
            self._emit_trace(status, duration, error)
        # The session refers to this record too: break the cycle, so the request's
        # objects are freed now rather than by the cyclic garbage collector.
        self.session = None
        log = settings.access_log
        if log is not None:
            self.client_addr = session.client_addr
            log.write(self)  # the line is made now (compiled JSON) or by the writer thread

    def _emit_trace(self, status: int, duration: float, error: Any) -> None:
        req = self.req
        settings = self.settings
        rid = self.request_id
        start = self.start
        hooks = [{"hook": name, "at_ms": _ms(began - start), "ms": _ms(ended - began)}
                 for name, began, ended in self.hooks_run or ()]
        self.hooks_run = None  # the trace is made: a late call (a background refresh) adds nothing
        record = {"service": self.service,
                  "request_id": rid.decode("latin-1") if type(rid) is bytes else rid,
                  "method": req.method, "path": req.path, "status": status, "duration_ms": _ms(duration),
                  "phase": getattr(self.session, "phase", None),
                  "peer": self.stats.upstream if self.stats is not None else None,
                  "reused": self.reused, "attempts": self.steps, "hooks": hooks,
                  "error": None if error is None else str(error)}
        settings.recent_traces.append(record)
        trace_log.warning("trace %s", json.dumps(record, separators=(",", ":")))

    def _count_error(self, error: BaseException) -> None:
        metrics = self.settings.metrics
        if metrics is None:
            return
        etype = getattr(error, "etype", None)
        source = getattr(error, "esource", None)
        metrics.count(metrics.errors, (self.service,
                                       etype.name if etype is not None else type(error).__name__,
                                       str(source).lower() if source is not None and str(source) else "unset"))


# --- access-log lines, made from finished records (see access_log's module docstring) ------------

def _seconds(value: float) -> str:
    # Integer formatting, the fraction padded by a leading 1 that is cut off: several
    # times cheaper than a float's "%.6f" or a "06d" spec.
    us = int(value * 1000000.0 + 0.5)
    if 0 <= us < 1000000000:  # under 1,000 s: seconds, ".mmm" and "uuu" from tables
        return f"{_COUNTS[us // 1000000]}{_DOT3[us // 1000 % 1000]}{_DIGITS3[us % 1000]}"
    frac = f"{us % 1000000 + 1000000}"
    return f"{us // 1000000}.{frac[1:]}"


def _client_text(addr: Any) -> str:
    if addr is None:
        return "null"
    if isinstance(addr, tuple):
        return f'"{addr[0]}"'  # an IP address: nothing in it to escape
    return _enc(str(addr))


def _count_text(n) -> str:
    """A count as JSON text; below 1000 (statuses, retries) from the table."""
    return _COUNTS[n] if 0 <= n < 1000 else f"{n}"


def _json_text(value: Any) -> str:
    """``value`` (a str) as a JSON string, as ``encode_basestring`` makes it. Compiled,
    a text with nothing to escape (quotes, backslashes, control characters), the
    usual case, is only quoted: a scan in C is cheaper than the call."""
    if not _COMPILED or type(value) is not str:
        return _enc(value)
    text = value  # (a C-typed str, so the loop below runs over its characters in C)
    for ch in text:
        c = ord(ch)
        if c < 32 or c == 34 or c == 92:
            return _enc(text)
    return f'"{text}"'


def _bytes_text(value: Any) -> str:
    """A header value (bytes, or None) as a JSON string of its Latin-1 text, or null."""
    if value is None:
        return "null"
    raw = value  # (typed bytes: the decode is a direct C call)
    return _json_text(raw.decode("latin-1"))


def _second_text(sec) -> str:
    """The start of a JSON time field: its quote and the UTC second (ISO 8601)."""
    return '"' + strftime("%Y-%m-%dT%H:%M:%S", gmtime(sec))


def _agent_and_referer(fields: list) -> tuple:
    """The first User-Agent and Referer values of a header field list (None where
    absent), found in one pass."""
    ua = ref = None
    for item in fields:
        name = item[0]
        if name == b"user-agent":
            if ua is None:
                ua = item[2]
        elif name == b"referer":
            if ref is None:
                ref = item[2]
    return ua, ref


def _request_id_text(rid: Any) -> str:
    if rid is None:
        return "null"
    if type(rid) is not bytes:  # a proxy's own id (a gateway plugin sets one)
        return _json_text(str(rid))
    return _bytes_text(rid)  # a made id (hex digits), or a client's (escaped if it must be)


#: three digits, zero-padded, with and without a leading dot: a duration's
#: milliseconds and microseconds
_DOT3 = tuple(f".{i:03d}" for i in range(1000))
_DIGITS3 = tuple(f"{i:03d}" for i in range(1000))
#: small counts as text ("0" to "999": seconds of a duration, statuses, retries)
_COUNTS = tuple(f"{i}" for i in range(1000))
#: the end of a time field, its milliseconds and the closing of the string
_MILLIS = tuple(f'.{i:03d}Z"' for i in range(1000))


class JsonLines:
    """Makes the JSON access-log line of a finished record with the chosen fields,
    in the order of :data:`~propylon.metrics.access_log.FIELDS`; ``line`` is the
    access-log writer's formatter.

    A line is one string built once from its pieces: each field's key (empty when
    not chosen) and its value in one or a few parts (empty too when not chosen), so
    a field costs no list append, and none of its own strings when its parts come
    from tables (a duration: its seconds, ".mmm" and "uuu")."""

    __slots__ = ("mask", "keys", "sec", "sec_text", "host", "host_text", "svc", "svc_text")

    def __init__(self, fields: tuple) -> None:
        chosen = set(fields)
        self.mask = 0
        keys = []
        first = True
        for bit, name in enumerate(FIELDS):
            if name in chosen:
                self.mask |= 1 << bit
                keys.append(("{" if first else ",") + f'"{name}":')
                first = False
            else:
                keys.append("")
        self.keys = tuple(keys)
        self.sec = -1
        self.sec_text = ""
        # The last client host and service and their JSON texts: a connection's
        # requests, and a service's, repeat them.
        self.host = None
        self.host_text = ""
        self.svc = None
        self.svc_text = ""

    def batch(self, rows: list, offset: float) -> bytes:
        """The lines of a batch of records as the bytes to write, each ending in a
        newline (the writer thread's call in the pure build; the compiled build's
        :class:`~propylon.metrics.json_batch.JsonBatch` makes the same bytes without
        a ``str`` per line, each as its request ends)."""
        out = []
        for r in rows:
            out.append(self.line(r, offset))
        return encode_lines(out)

    def line(self, r: RequestRecord, offset: float) -> str:
        """The line of record ``r``; ``offset`` turns its clock into wall-clock time."""
        mask = self.mask
        keys = self.keys
        req = r.req
        time_a = time_b = client = method = path = status = sent = received = ""
        duration = up_duration = upstream = retries = error = rid = ua = ref = service = ""
        if mask & 1:  # time
            now = r.end + offset
            sec = int(now)
            if sec != self.sec:
                self.sec = sec
                self.sec_text = _second_text(sec)
            time_a = self.sec_text
            time_b = _MILLIS[int((now - sec) * 1000.0)]
        if mask & 2:  # client_addr
            addr = r.client_addr
            if type(addr) is tuple:
                host = addr[0]
                if host != self.host:
                    self.host = host
                    self.host_text = _client_text(addr)
                client = self.host_text
            else:
                client = _client_text(addr)
        if mask & 4:  # method
            method = _JSON_METHODS.get(req.method_bytes) or _enc(req.method)
        if mask & 8:  # path
            path = _json_text(req.path)
        if mask & 16:  # status
            status = _count_text(r.status)
        if mask & 32:  # bytes_sent
            sent = f"{r.sent}"
        if mask & 64:  # bytes_received
            received = f"{r.received}"
        if mask & 128:  # duration
            duration = _seconds(r.end - r.start)
        if mask & 256:  # upstream_duration
            up_duration = _seconds(r.upstream_time) if r.attempts else "null"
        if mask & 512:  # upstream_addr
            upstream = r.stats.json_label if r.stats is not None else "null"
        if mask & 1024:  # retries
            retries = _count_text(r.attempts - 1 if r.attempts else 0)
        if mask & 2048:  # error
            error = "null" if r.error is None else _json_text(str(r.error))
        if mask & 4096:  # request_id
            rid = _request_id_text(r.request_id)
        if mask & 24576:  # user_agent, referer
            ua_value, ref_value = _agent_and_referer(req.headers.fields)
            if mask & 8192:
                ua = _bytes_text(ua_value)
            if mask & 16384:
                ref = _bytes_text(ref_value)
        if mask & 32768:  # service
            svc = r.service
            if svc is not self.svc:
                self.svc = svc
                self.svc_text = _json_text(svc)
            service = self.svc_text
        return (f"{keys[0]}{time_a}{time_b}{keys[1]}{client}{keys[2]}{method}{keys[3]}{path}"
                f"{keys[4]}{status}{keys[5]}{sent}{keys[6]}{received}"
                f"{keys[7]}{duration}{keys[8]}{up_duration}"
                f"{keys[9]}{upstream}{keys[10]}{retries}{keys[11]}{error}{keys[12]}{rid}"
                f"{keys[13]}{ua}{keys[14]}{ref}{keys[15]}{service}}}")


_clf_sec = [-1, ""]


def combined_line(r: RequestRecord, offset: float) -> str:
    """nginx's ``combined`` line of a finished record."""
    req = r.req
    sec = int(r.end + offset)
    if sec != _clf_sec[0]:
        _clf_sec[0] = sec
        _clf_sec[1] = strftime("%d/%b/%Y:%H:%M:%S +0000", gmtime(sec))
    addr = r.client_addr
    client = "-" if addr is None else (addr[0] if isinstance(addr, tuple) else str(addr))
    major, minor = req.version
    ua = req.headers.get_bytes(b"user-agent")
    ref = req.headers.get_bytes(b"referer")
    return (f'{client} - - [{_clf_sec[1]}] '
            f'"{clf_quote(req.method)} {clf_quote(req.uri)} HTTP/{major}.{minor}" '
            f'{r.status} {r.sent} "{clf_quote(None if ref is None else ref.decode("latin-1"))}" '
            f'"{clf_quote(None if ua is None else ua.decode("latin-1"))}"')


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
