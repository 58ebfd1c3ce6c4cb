"""Request ids and W3C trace context, and OpenTelemetry spans when asked for.

* ``X-Request-Id``: a client's id is kept when it is short printable ASCII (so a
  chain of proxies shares one id); otherwise the proxy makes one (32 hex digits).
  It travels to the upstream in the request and back to the client in the response.
* ``traceparent`` (W3C Trace Context, ``00-<trace id>-<parent id>-<flags>``): the
  trace id of a valid incoming header is kept, a missing or malformed one starts a
  new trace; every upstream attempt gets a new parent id, so the origin's spans hang
  under the attempt that reached it. ``tracestate`` is passed on untouched.
* OpenTelemetry (``opentelemetry-sdk``, optional): one SERVER span per request and
  one CLIENT span per upstream attempt, children of the incoming trace context.
  :func:`otel_tracer` returns None when the package is not installed, so the rest
  of the proxy never imports it.
"""

from __future__ import annotations

from random import getrandbits
from typing import Any, Optional

__all__ = ["TraceContext", "OtelSpans", "new_request_id", "valid_request_id", "otel_tracer"]

_HEX = frozenset(b"0123456789abcdef")
_MAX_REQUEST_ID = 128
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def new_request_id() -> str:
    """A fresh request id: 128 random bits as 32 lower-case hex digits.

    Ids need to be unique, not secret: the ``random`` module (reseeded in every
    forked worker) is several times cheaper than ``os.urandom``'s system call."""
    return f"{getrandbits(128):032x}"


def new_span_id() -> str:
    """64 random bits, never all zero (W3C: an invalid id), as 16 hex digits."""
    return f"{getrandbits(64) or 1:016x}"


def valid_request_id(value: Optional[bytes]) -> bool:
    """Whether a client's ``X-Request-Id`` may be passed on: 1–128 bytes of
    visible ASCII (anything else could smuggle control bytes into logs)."""
    if not value or len(value) > _MAX_REQUEST_ID:
        return False
    return all(0x21 <= c <= 0x7E for c in value)


def _is_hex(value: bytes, size: int) -> bool:
    return len(value) == size and all(c in _HEX for c in value)


class TraceContext:
    """The trace a request belongs to: its trace id, the caller's span id (if any)
    and the flags to pass on."""

    __slots__ = ("trace_id", "parent_id", "flags")

    def __init__(self, trace_id: str, parent_id: Optional[str], flags: str) -> None:
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.flags = flags

    @classmethod
    def from_header(cls, value: Optional[bytes], sampled: bool = False) -> "TraceContext":
        """The context of an incoming ``traceparent``, or a new trace when the header
        is missing or malformed. ``sampled`` sets the flag of a new trace."""
        if value is not None:
            parts = value.strip().lower().split(b"-")
            if (len(parts) >= 4 and _is_hex(parts[0], 2) and parts[0] != b"ff"
                    and (parts[0] != b"00" or len(parts) == 4)
                    and _is_hex(parts[1], 32) and _is_hex(parts[2], 16) and _is_hex(parts[3], 2)):
                trace_id, parent_id = parts[1].decode(), parts[2].decode()
                if trace_id != _ZERO_TRACE and parent_id != _ZERO_SPAN:
                    return cls(trace_id, parent_id, parts[3].decode())
        return cls(new_request_id(), None, "01" if sampled else "00")

    def child_header(self, span_id: Optional[str] = None) -> str:
        """A ``traceparent`` value for an upstream request: this trace, a new span
        id (or ``span_id``, the attempt span's when OpenTelemetry records one)."""
        return f"00-{self.trace_id}-{span_id or new_span_id()}-{self.flags}"


def otel_tracer(provider: Any = None) -> Any:
    """An OpenTelemetry tracer from ``provider`` (default: the global one, which the
    application points at its exporter with ``opentelemetry.trace.set_tracer_provider``),
    or None when ``opentelemetry`` is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_tracer("propylon", tracer_provider=provider)


class OtelSpans:
    """The request span and attempt spans of one request (OpenTelemetry present)."""

    __slots__ = ("_tracer", "_trace", "_parent_ctx", "request_span", "attempt_span")

    def __init__(self, tracer: Any, ctx: TraceContext, name: str, attributes: dict) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        self._tracer = tracer
        self._trace = trace
        parent = None
        if ctx.parent_id is not None:
            sc = SpanContext(int(ctx.trace_id, 16), int(ctx.parent_id, 16), is_remote=True,
                             trace_flags=TraceFlags(int(ctx.flags, 16)))
            parent = trace.set_span_in_context(NonRecordingSpan(sc))
        self.request_span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER,
                                              attributes=attributes)
        # A new trace takes the id OpenTelemetry gave the request span.
        sc = self.request_span.get_span_context()
        ctx.trace_id = f"{sc.trace_id:032x}"
        ctx.flags = f"{int(sc.trace_flags):02x}"
        self._parent_ctx = trace.set_span_in_context(self.request_span)
        self.attempt_span: Any = None

    def start_attempt(self, attempt: int, upstream: str) -> str:
        """Open the span of one upstream attempt; returns its span id in hex."""
        from opentelemetry.trace import SpanKind

        self.attempt_span = self._tracer.start_span(
            "upstream attempt", context=self._parent_ctx, kind=SpanKind.CLIENT,
            attributes={"propylon.attempt": attempt, "server.address": upstream})
        return f"{self.attempt_span.get_span_context().span_id:016x}"

    def end_attempt(self, error: Optional[BaseException], reused: Optional[bool]) -> None:
        span = self.attempt_span
        if span is None:
            return
        self.attempt_span = None
        if reused is not None:
            span.set_attribute("propylon.connection_reused", reused)
        if error is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(error)))
        span.end()

    def end(self, status: int, error: Optional[BaseException]) -> None:
        self.end_attempt(error, None)
        span = self.request_span
        if status:
            span.set_attribute("http.response.status_code", status)
        if error is not None or status >= 500:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                               str(error) if error is not None else None))
        span.end()
