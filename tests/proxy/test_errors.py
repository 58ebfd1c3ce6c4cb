"""Errors become the statuses Pingora's default fail_to_proxy picks."""

from __future__ import annotations

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
