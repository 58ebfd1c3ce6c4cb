"""The hook table (``proxy_trait.HOOKS``), the trailer hooks over real chunked
responses, and the proxy's ``request_summary`` in every log line about a request."""

from __future__ import annotations

import inspect
import logging
import socket
import time

import pytest
from proxy_support import raw_exchange, read_request

from propylon import ALPN, HttpPeer, PeerOptions, ProxyHttp
from propylon.protocols.http.v1.server import HttpServerOptions
from propylon.proxy.proxy_trait import AWAITED, CALLED, HOOKS, overridden_hooks, resolve_hooks


def test_every_hook_with_a_default_is_in_the_table_with_its_calling_kind():
    methods = {name: fn for name, fn in vars(ProxyHttp).items()
               if inspect.isfunction(fn) and not name.startswith("_")}
    assert set(methods) - set(HOOKS) == {"new_ctx", "upstream_peer"}
    for name, how in HOOKS.items():
        assert how == (AWAITED if inspect.iscoroutinefunction(methods[name]) else CALLED), name


def test_resolved_hooks_follow_the_table_and_skip_defaults():
    class One(ProxyHttp):
        async def upstream_peer(self, session, ctx):
            raise NotImplementedError

        def response_body_filter(self, session, body, eos, ctx):
            return None

    proxy = One()
    assert overridden_hooks(proxy) == {"response_body_filter"}
    slots = resolve_hooks(proxy)
    assert len(slots) == len(HOOKS)
    assert [name for name, h in zip(HOOKS, slots) if h is not None] == ["response_body_filter"]


def test_an_async_def_where_the_engine_calls_is_refused_once():
    class Wrong(ProxyHttp):
        async def upstream_peer(self, session, ctx):
            raise NotImplementedError

        async def response_body_filter(self, session, body, eos, ctx):
            return None

    with pytest.raises(TypeError, match="response_body_filter must be a plain def"):
        resolve_hooks(Wrong())


async def chunked_with_trailers(up, reader, writer) -> None:
    while await read_request(up, reader) is not None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n"
                     b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n")
        await writer.drain()


class TrailerProxy(ProxyHttp):
    def __init__(self, port: int, as_body: bool) -> None:
        self.port = port
        self.as_body = as_body
        self.seen: list = []

    async def upstream_peer(self, session, ctx):
        return HttpPeer(("127.0.0.1", self.port), False, "")

    def upstream_response_trailer_filter(self, session, trailers, ctx):
        self.seen.append(("upstream", trailers.get("x-checksum")))

    async def response_trailer_filter(self, session, trailers, ctx):
        self.seen.append(("response", trailers.get("x-checksum")))
        if self.as_body:
            return b"|checksum=" + trailers.get_bytes("x-checksum")
        trailers.append("X-Proxy", "1")
        return None


REQ = b"GET / HTTP/1.1\r\nHost: origin.test\r\nTE: trailers\r\nConnection: close\r\n\r\n"


def test_response_trailer_filter_changes_chunked_http1_trailers(start_proxy, upstream):
    origin = upstream(chunked_with_trailers)
    proxy = TrailerProxy(origin.port, as_body=False)
    p = start_proxy(proxy)
    out = raw_exchange(p.port, REQ)
    assert out.startswith(b"HTTP/1.1 200")
    tail = out.partition(b"\r\n\r\n")[2]
    assert tail == b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Proxy: 1\r\n\r\n"
    assert proxy.seen == [("upstream", "abc"), ("response", "abc")]


def test_response_trailer_filter_may_turn_trailers_into_a_last_body_piece(start_proxy, upstream):
    origin = upstream(chunked_with_trailers)
    p = start_proxy(TrailerProxy(origin.port, as_body=True))
    out = raw_exchange(p.port, REQ)
    tail = out.partition(b"\r\n\r\n")[2]
    assert tail == b"5\r\nhello\r\nd\r\n|checksum=abc\r\n0\r\n\r\n"


class Summarised(ProxyHttp):
    """Every path that logs about a request: a retry, a hook bug, a final error."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request_summary(self, session, ctx) -> str:
        return f"SUMMARY<{session.req_header.path}>"

    async def request_filter(self, session, ctx) -> bool:
        if session.req_header.path == "/bug":
            raise RuntimeError("bug in a hook")
        return False

    async def upstream_peer(self, session, ctx):
        return HttpPeer(("127.0.0.1", self.port), False, "")

    def fail_to_connect(self, session, peer, ctx, e):
        e.set_retry(session.req_header.path == "/retry")
        return e

    def response_body_filter(self, session, body, eos, ctx):
        return None

    async def logging(self, session, e, ctx) -> None:
        if session.req_header.path == "/logbug":
            raise RuntimeError("bug in logging")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("path, message", [
    ("/retry", "retry: true"),       # the warning of each retry
    ("/down", "Fail to proxy"),      # the final error
    ("/bug", "hook failed on"),      # a hook's bug
    ("/logbug", "logging hook failed on"),
])
def test_request_summary_is_in_every_log_line_about_the_request(start_proxy, caplog, path, message):
    p = start_proxy(Summarised(closed_port()))
    with caplog.at_level(logging.INFO, logger="propylon.proxy"):
        out = raw_exchange(p.port, b"GET %s HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" % path.encode())
        assert out.startswith(b"HTTP/1.1 ")
        deadline = time.monotonic() + 5
        while not any(message in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.02)
    lines = [r.getMessage() for r in caplog.records if r.name == "propylon.proxy"]
    about = [line for line in lines if message in line]
    assert about, lines
    assert all(f"SUMMARY<{path}>" in line for line in lines), lines


class GrpcTrailers(ProxyHttp):
    def __init__(self, addr) -> None:
        self.addr = addr

    async def upstream_peer(self, session, ctx):
        return HttpPeer(self.addr, False, "", PeerOptions(alpn=ALPN.H2, max_h2_streams=100))

    async def response_trailer_filter(self, session, trailers, ctx):
        trailers.append("X-Proxy-Trailer", "seen")
        return None


def test_response_trailer_filter_changes_http2_trailers(lab, start_proxy):
    """gRPC over h2c both ways: the status trailers pass the hook."""
    import grpc

    from propylon.lab.grpc_echo import echo_unary

    p = start_proxy(GrpcTrailers(lab.address("grpc", "grpc")), options=HttpServerOptions(h2c=True))
    with grpc.insecure_channel(f"127.0.0.1:{p.port}") as channel:
        reply, call = echo_unary(channel).with_call({"message": "hi"}, timeout=10)
    assert reply["message"] == "hi"
    trailing = dict(call.trailing_metadata())
    assert trailing["x-proxy-trailer"] == "seen" and trailing["x-lab-trailer"] == "echo"
