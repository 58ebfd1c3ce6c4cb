"""Request ids and W3C trace context reach the upstream; OpenTelemetry spans per
request and per upstream attempt (the lab's blue ``/echo`` shows what arrived)."""

from __future__ import annotations

import json
import re
import subprocess

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from support import free_port

from propylon import HttpPeer, ProxyHttp
from propylon.metrics import Observability
from propylon.metrics.tracing import TraceContext

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"


class ToBlue(ProxyHttp):
    """Blue; with ``dead`` set, the first attempt goes to a closed port and is retried."""

    def __init__(self, blue, dead=None) -> None:
        self.blue, self.dead = blue, dead

    def new_ctx(self):
        return {"attempts": 0}

    async def upstream_peer(self, session, ctx):
        ctx["attempts"] += 1
        addr = self.dead if self.dead is not None and ctx["attempts"] == 1 else self.blue
        return HttpPeer(addr, tls=False, sni="")

    def fail_to_connect(self, session, peer, ctx, e):
        e.set_retry(True)
        return e


def get(url: str, *headers: str) -> tuple[dict, dict]:
    """curl ``url``; the response headers and the JSON body."""
    args = ["curl", "-s", "-D", "-", url]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args, capture_output=True, timeout=10, check=True).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    resp = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in head.split("\r\n")[1:])}
    return resp, json.loads(body)


def upstream_header(echo: dict, name: str) -> list[str]:
    return [v for k, v in echo["headers"] if k.lower() == name]


def observer(**kw) -> Observability:
    return Observability(registry=CollectorRegistry(), **{"trace_context": True, **kw})


def test_traceparent_and_request_id_reach_the_upstream(lab, serve):
    url = serve(ToBlue(lab.address("blue")), observer())
    resp, echo = get(url + "/echo", f"traceparent: {INCOMING}", "tracestate: vendor=1")
    [tp] = upstream_header(echo, "traceparent")
    version, trace_id, span_id, flags = tp.split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01")
    assert re.fullmatch(r"[0-9a-f]{16}", span_id) and span_id != "00f067aa0ba902b7"
    assert upstream_header(echo, "tracestate") == ["vendor=1"]
    [rid] = upstream_header(echo, "x-request-id")
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert resp["x-request-id"] == rid


def test_new_trace_and_client_request_id(lab, serve):
    url = serve(ToBlue(lab.address("blue")), observer())
    resp, echo = get(url + "/echo", "X-Request-Id: order-42", "traceparent: 00-zz-bad-01")
    assert upstream_header(echo, "x-request-id") == ["order-42"]
    assert resp["x-request-id"] == "order-42"
    [tp] = upstream_header(echo, "traceparent")
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", tp) and TRACE not in tp


def test_nothing_added_when_switched_off(lab, serve):
    url = serve(ToBlue(lab.address("blue")), observer(request_id=False, trace_context=False))
    resp, echo = get(url + "/echo")
    assert upstream_header(echo, "traceparent") == [] and upstream_header(echo, "x-request-id") == []
    assert "x-request-id" not in resp


def test_trace_context_passes_unchanged_by_default(lab, serve):
    url = serve(ToBlue(lab.address("blue")), Observability(registry=CollectorRegistry()))
    _, echo = get(url + "/echo", f"traceparent: {INCOMING}")
    assert upstream_header(echo, "traceparent") == [INCOMING]


def test_otel_spans_for_a_request_with_one_retry(lab, serve):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    dead = ("127.0.0.1", free_port())  # nothing listens there: the connect is refused
    url = serve(ToBlue(lab.address("blue"), dead), observer(otel=provider))
    _, echo = get(url + "/echo", f"traceparent: {INCOMING}")
    spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.kind is SpanKind.SERVER]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time)
    assert len(requests) == 1 and len(attempts) == 2, spans
    [req] = requests
    assert f"{req.context.trace_id:032x}" == TRACE
    assert f"{req.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert req.attributes["http.response.status_code"] == 200
    for a in attempts:
        assert a.parent.span_id == req.context.span_id
        assert a.context.trace_id == req.context.trace_id
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert "ConnectRefused" in attempts[0].status.description
    assert attempts[0].attributes["server.address"] == f"{dead[0]}:{dead[1]}"
    assert attempts[1].status.status_code is StatusCode.UNSET
    # The origin's parent is the attempt that reached it.
    [tp] = upstream_header(echo, "traceparent")
    assert tp == f"00-{TRACE}-{attempts[1].context.span_id:016x}-01"


def test_trace_context_parsing():
    ctx = TraceContext.from_header(INCOMING.encode())
    assert (ctx.trace_id, ctx.parent_id, ctx.flags) == (TRACE, "00f067aa0ba902b7", "01")
    for bad in (b"", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01", b"ff-" + TRACE.encode() + b"-00f067aa0ba902b7-01",
                f"00-{TRACE}-00f067aa0ba902b7-01-extra".encode(), f"00-{TRACE.upper()}x-00f067aa0ba902b7-01".encode()):
        assert TraceContext.from_header(bad).parent_id is None, bad
    # A later version may add fields after the four known ones.
    assert TraceContext.from_header(f"01-{TRACE}-00f067aa0ba902b7-01-more".encode()).trace_id == TRACE
