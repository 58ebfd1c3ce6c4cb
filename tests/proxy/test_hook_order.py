"""The engine calls the hooks in Pingora's order (docs/phases.md)."""

from __future__ import annotations

import subprocess

from propylon import Error, ErrorType, HttpPeer, PeerOptions, ProxyHttp
from propylon.proxy.proxy_trait import FailToProxy

from proxy_support import raw_exchange
from support import free_port


class Recorder(ProxyHttp):
    """Records every hook call; behaviour is chosen per test with flags."""

    def __init__(self, port: int, answer_early: bool = False, body_error: bool = False) -> None:
        self.port = port
        self.answer_early = answer_early
        self.body_error = body_error
        self.calls: list[str] = []

    def new_ctx(self):
        self.calls.append("new_ctx")
        return {}

    async def early_request_filter(self, session, ctx):
        self.calls.append("early_request_filter")

    async def request_filter(self, session, ctx):
        self.calls.append("request_filter")
        if self.answer_early:
            await session.respond_error(403)
            return True
        return False

    async def proxy_upstream_filter(self, session, ctx):
        self.calls.append("proxy_upstream_filter")
        return True

    async def upstream_peer(self, session, ctx):
        self.calls.append("upstream_peer")
        return HttpPeer(("127.0.0.1", self.port), False, "", PeerOptions(connection_timeout=2))

    def fail_to_connect(self, session, peer, ctx, e):
        self.calls.append("fail_to_connect")
        return e

    async def connected_to_upstream(self, session, reused, peer, digest, ctx):
        self.calls.append("connected_to_upstream")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        self.calls.append("upstream_request_filter")

    async def request_body_filter(self, session, body, end_of_stream, ctx):
        self.calls.append("request_body_filter")
        if self.body_error:
            raise Error.http_status(413, "too big")
        return None

    async def upstream_response_filter(self, session, upstream_response, ctx):
        self.calls.append("upstream_response_filter")

    async def response_filter(self, session, upstream_response, ctx):
        self.calls.append("response_filter")

    def upstream_response_body_filter(self, session, body, end_of_stream, ctx):
        self.calls.append("upstream_response_body_filter")
        return None

    def response_body_filter(self, session, body, end_of_stream, ctx):
        self.calls.append("response_body_filter")
        return None

    def error_while_proxy(self, peer, session, e, ctx, client_reused):
        self.calls.append("error_while_proxy")
        return e

    async def fail_to_proxy(self, session, e, ctx):
        self.calls.append("fail_to_proxy")
        code = 413 if e.etype == ErrorType.http_status(413) else 502
        await session.respond_error(code)
        return FailToProxy(code, False)

    def suppress_error_log(self, session, ctx, error):
        self.calls.append("suppress_error_log")
        return False

    async def logging(self, session, e, ctx):
        self.calls.append("logging")


def settled(rec: Recorder) -> list[str]:
    """The calls once ``logging`` ran (it runs just after the response went out)."""
    import time

    deadline = time.monotonic() + 2
    while (not rec.calls or rec.calls[-1] != "logging") and time.monotonic() < deadline:
        time.sleep(0.01)
    return rec.calls


def curl(url: str, *args: str) -> tuple[int, str]:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args, url],
                         capture_output=True, text=True, timeout=20)
    return int(out.stdout or 0), out.stderr


def test_normal_request_order(start_proxy, upstream):
    up = upstream()
    rec = Recorder(up.port)
    p = start_proxy(rec)
    assert curl(p.url + "/")[0] == 200
    assert settled(rec) == [
        "new_ctx", "early_request_filter", "request_filter", "proxy_upstream_filter",
        "upstream_peer", "connected_to_upstream", "upstream_request_filter",
        "request_body_filter", "upstream_response_filter", "response_filter",
        "upstream_response_body_filter", "response_body_filter", "logging",
    ]


def test_request_filter_answer_stops_early(start_proxy, upstream):
    up = upstream()
    rec = Recorder(up.port, answer_early=True)
    p = start_proxy(rec)
    assert curl(p.url + "/")[0] == 403
    assert settled(rec) == ["new_ctx", "early_request_filter", "request_filter", "logging"]
    assert up.connections == 0


def test_connect_failure_order(start_proxy):
    closed_port = free_port()  # nothing listens there: connection refused
    rec = Recorder(closed_port)
    p = start_proxy(rec)
    assert curl(p.url + "/")[0] == 502
    assert settled(rec) == [
        "new_ctx", "early_request_filter", "request_filter", "proxy_upstream_filter",
        "upstream_peer", "fail_to_connect", "fail_to_proxy", "suppress_error_log", "logging",
    ]


def test_body_filter_error_order(start_proxy, upstream):
    up = upstream()
    rec = Recorder(up.port, body_error=True)
    p = start_proxy(rec)
    reply = raw_exchange(p.port, b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd")
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert settled(rec) == [
        "new_ctx", "early_request_filter", "request_filter", "proxy_upstream_filter",
        "upstream_peer", "connected_to_upstream", "upstream_request_filter",
        "request_body_filter", "error_while_proxy", "fail_to_proxy", "suppress_error_log", "logging",
    ]
    # The upstream saw the head but never the body the filter refused.
    assert b"abcd" not in bytes(up.received)


def test_hooks_not_overridden_are_not_called(start_proxy, upstream):
    up = upstream()

    class Minimal(ProxyHttp):
        async def upstream_peer(self, session, ctx):
            return HttpPeer(("127.0.0.1", up.port), False, "")

    from propylon.proxy.proxy_trait import overridden_hooks

    assert overridden_hooks(Minimal()) == frozenset()
    p = start_proxy(Minimal())
    engine = p.app.engine
    assert all(getattr(engine, name) is None for name in dir(engine) if name.startswith("h_"))
    assert curl(p.url + "/")[0] == 200
