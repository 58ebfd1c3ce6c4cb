"""Every error answer the proxy makes comes with one log line saying why: the
error, the phase it happened in, the peer and the attempt count. A request the
HTTP/1 codec refuses before the proxy sees it (400, 414, 431...) gets its own line:
the reason, the phase, the client's address and what was offending, once per kind
per interval."""

from __future__ import annotations

import logging
import socket
import subprocess
import time

import pytest

from propylon import HttpPeer, ProxyHttp
from proxy_support import dead_port, raw_exchange


def _status(url: str) -> int:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                         capture_output=True, text=True, timeout=30)
    return int(out.stdout or 0)


def _proxy_lines(caplog, wanted: str) -> list:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        lines = [r for r in caplog.records if r.name == "propylon.proxy" and r.levelno >= logging.WARNING]
        if any(wanted in r.getMessage() for r in lines):
            return lines
        time.sleep(0.02)
    return [r for r in caplog.records if r.name == "propylon.proxy" and r.levelno >= logging.WARNING]


class Dead(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session, ctx):
        return HttpPeer(("127.0.0.1", self.port), False, "")


class BrokenFilter(ProxyHttp):
    async def request_filter(self, session, ctx):
        raise KeyError("no such tenant")

    async def upstream_peer(self, session, ctx):
        raise AssertionError("not reached")


def test_dead_upstream_gives_502_and_one_line_naming_peer_phase_and_error(start_proxy, caplog):
    port = dead_port()
    p = start_proxy(Dead(port))
    with caplog.at_level(logging.WARNING, logger="propylon.proxy"):
        assert _status(p.url + "/") == 502
        lines = _proxy_lines(caplog, "Fail to proxy")
    assert len(lines) == 1, [r.getMessage() for r in lines]
    line = lines[0]
    text = line.getMessage()
    assert line.levelno == logging.ERROR
    assert "status: 502" in text and "tries: 1" in text
    assert "phase: connect" in text
    assert f"peer: 127.0.0.1:{port}" in text
    assert "ConnectRefused" in text or "refused" in text.lower()


def test_a_hook_that_raises_gives_500_with_its_phase_named(start_proxy, caplog):
    p = start_proxy(BrokenFilter())
    with caplog.at_level(logging.WARNING, logger="propylon.proxy"):
        assert _status(p.url + "/") == 500
        lines = _proxy_lines(caplog, "Fail to proxy")
    why = [r.getMessage() for r in lines if "Fail to proxy" in r.getMessage()]
    assert len(why) == 1, why
    assert "status: 500" in why[0] and "phase: request_filter" in why[0] and "peer: -" in why[0]
    assert "KeyError" in why[0]


def _refusals(caplog, count: int = 1) -> list:
    """The codec's "Refused request" lines, once ``count`` of them were written."""
    deadline = time.monotonic() + 3
    while True:
        lines = [r for r in caplog.records
                 if r.name == "propylon.http.v1" and r.getMessage().startswith("Refused request")]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


class Forward(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        raise AssertionError("a refused request never reaches the proxy")


def _client_and_reply(port: int, data: bytes) -> tuple[str, bytes]:
    """Send ``data`` on a new connection; (the client's address as logged, the reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        host, cport = s.getsockname()[:2]
        s.sendall(data)
        out = b""
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            out += piece
    return f"{host}:{cport}", out


_HEAD = b"GET / HTTP/1.1\r\nHost: t\r\n"


@pytest.mark.parametrize("data, status, phase, offending", [
    (_HEAD + b"X-Bad: a\x01b\r\n\r\n", 400, "header", "byte 0x01 in the value of field 'X-Bad'"),
    (b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, "request line", "byte 0x40 in the method"),
    (b"GET /a\x7fb HTTP/1.1\r\nHost: t\r\n\r\n", 400, "request line", "byte 0x7f at offset 2 of the request target"),
    (_HEAD + b"X-Huge: " + b"h" * 70_000 + b"\r\n\r\n", 431, "header", "the largest 'X-Huge' of 70006 bytes"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "request line", "a request target of more than 8192 bytes"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400, "body",
     "byte 0x7a in a chunk size line"),
], ids=["header-value", "method", "target", "431", "414", "chunk-size"])
def test_a_refused_request_gets_one_line_naming_client_phase_and_what_offended(start_proxy, caplog, data, status,
                                                                             phase, offending):
    p = start_proxy(Forward())
    with caplog.at_level(logging.WARNING, logger="propylon.http.v1"):
        client, reply = _client_and_reply(p.port, data)
        assert reply.startswith(b"HTTP/1.1 %d " % status)
        (line,) = _refusals(caplog)
    text = line.getMessage()
    assert line.levelno == logging.WARNING
    assert f"status: {status}" in text and f"phase: {phase}" in text and f"client: {client}" in text
    assert offending in text, text


def test_the_same_refusal_again_is_counted_not_logged(start_proxy, caplog):
    p = start_proxy(Forward())
    p.lt.run(_shorten_interval())
    bad = b"GET / HTTP/1.1\r\nHost: t\r\nX-Bad: a\x01b\r\n\r\n"
    with caplog.at_level(logging.WARNING, logger="propylon.http.v1"):
        for _ in range(5):
            assert raw_exchange(p.port, bad).startswith(b"HTTP/1.1 400 ")
        lines = _refusals(caplog, 2)
    texts = [r.getMessage() for r in lines]
    assert len(texts) == 2, texts  # the first in full, then the count of the others
    assert "client: " in texts[0]
    assert texts[1].endswith("(and 4 more in the last 0.3 s)") and "client: " not in texts[1]


async def _shorten_interval() -> None:
    # The loop's refusal counter, made now with a short interval so its summary comes soon.
    import asyncio

    from propylon.repeats import RepeatedErrors

    asyncio.get_running_loop().propylon_refusals = RepeatedErrors(0.3)
