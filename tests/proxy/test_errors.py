"""Errors become the statuses Pingora's default fail_to_proxy picks."""

from __future__ import annotations

import re
import subprocess
import time

from propylon import Error, ErrorType, HttpPeer, PeerOptions, ProxyHttp


def status(url: str) -> tuple[int, float]:
    t0 = time.monotonic()
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                         capture_output=True, text=True, timeout=30)
    return int(out.stdout or 0), time.monotonic() - t0


def logged(proxy, n: int = 1) -> list:
    """The errors the proxy's logging hook saw; it runs just after the response
    went out, so give it a moment."""
    deadline = time.monotonic() + 2
    while len(proxy.logged) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return proxy.logged


class Configurable(ProxyHttp):
    def __init__(self, addr, options=None, raise_in_filter=None) -> None:
        self.addr, self.options, self.raise_in_filter = addr, options, raise_in_filter
        self.logged: list = []

    async def request_filter(self, session, ctx):
        if self.raise_in_filter is not None:
            raise self.raise_in_filter
        return False

    async def upstream_peer(self, session, ctx):
        return HttpPeer(self.addr, False, "", self.options)

    async def logging(self, session, e, ctx):
        self.logged.append(e)


def test_connect_timeout_is_502(lab, start_proxy):
    proxy = Configurable(lab.address("blackhole"), PeerOptions(connection_timeout=0.2))
    p = start_proxy(proxy)
    code, took = status(p.url + "/")
    assert code == 502 and took < 2
    assert logged(proxy)[0].etype == ErrorType.CONNECT_TIMEDOUT


def test_read_timeout_is_502(lab, start_proxy):
    proxy = Configurable(lab.address("blue"), PeerOptions(read_timeout=0.2))
    p = start_proxy(proxy)
    code, took = status(p.url + "/slow?ms=2000")
    assert code == 502 and took < 1.5
    assert logged(proxy)[0].etype == ErrorType.READ_TIMEDOUT


def test_http_status_error_sets_the_code(lab, start_proxy):
    p = start_proxy(Configurable(lab.address("blue"), raise_in_filter=Error.http_status(418)))
    assert status(p.url + "/")[0] == 418


def test_bug_in_a_hook_is_500_and_logged_once(lab, start_proxy):
    proxy = Configurable(lab.address("blue"), raise_in_filter=ValueError("oops"))
    p = start_proxy(proxy)
    assert status(p.url + "/")[0] == 500
    assert len(logged(proxy)) == 1 and proxy.logged[0].etype == ErrorType.INTERNAL_ERROR


def test_upstream_error_status_passes_through(lab, start_proxy):
    p = start_proxy(Configurable(lab.address("blue")))
    assert status(p.url + "/status/503")[0] == 503


def test_hook_error_after_connect_keeps_its_source(lab, start_proxy):
    """An Error with no source raised after the upstream connection is open is
    internal (500), not an upstream failure (502)."""

    class Late(ProxyHttp):
        async def upstream_peer(self, session, ctx):
            return HttpPeer(lab.address("blue"), False, "")

        async def upstream_request_filter(self, session, upstream_request, ctx):
            raise Error.new(ErrorType.custom("PolicyViolation"))

    p = start_proxy(Late())
    assert status(p.url + "/")[0] == 500


# --- what the error log says -------------------------------------------------------


class _To(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session, ctx):
        return HttpPeer(("127.0.0.1", self.port), False, "")


def _proxy_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "propylon.proxy"]


def _wait_line(caplog, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in _proxy_lines(caplog)) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_dead_origin_is_logged_once_per_interval_with_a_count(start_proxy, caplog):
    import logging
    import socket

    from proxy_support import raw_exchange

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens there once closed
    p = start_proxy(_To(dead))
    p.app.engine.repeats.interval = 0.5
    with caplog.at_level(logging.INFO, logger="propylon.proxy"):
        for _ in range(20):
            # The 502 (Content-Length: 0) keeps the connection: read up to its head.
            out = raw_exchange(p.port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", until_close=False)
            assert out.startswith(b"HTTP/1.1 502 ")
        _wait_line(caplog, "more in the last")
    lines = [line for line in _proxy_lines(caplog) if "Fail to proxy" in line]
    # The first failure of an interval in full: cause, peer, attempts and the
    # request; the others counted in one line when the interval ends.
    assert "ConnectRefused" in lines[0] and f"127.0.0.1:{dead}" in lines[0]
    assert "tries: 1" in lines[0] and "GET /x" in lines[0]
    counted = [int(re.search(r"\(and (\d+) more in the last 0.5 s\)$", line).group(1))
               for line in lines if "more in the last" in line]
    full = [line for line in lines if "more in the last" not in line]
    assert counted and len(full) + sum(counted) == 20, lines
    assert len(lines) <= 10  # a busy machine may take more than one interval for 20 requests
    assert all("ConnectRefused" in line and f"127.0.0.1:{dead}" in line for line in lines)


def test_a_body_cut_short_after_its_head_is_logged_with_the_status_sent(start_proxy, upstream, caplog):
    import logging

    from proxy_support import raw_exchange, read_request

    async def truncated(up, reader, writer) -> None:
        await read_request(up, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()

    up = upstream(truncated)
    p = start_proxy(_To(up.port))
    with caplog.at_level(logging.INFO, logger="propylon.proxy"):
        out = raw_exchange(p.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        _wait_line(caplog, "Fail to proxy")
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"only ten b")
    lines = [line for line in _proxy_lines(caplog) if "Fail to proxy" in line]
    assert len(lines) == 1 and "status: 200" in lines[0], lines
