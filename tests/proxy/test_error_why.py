"""Every error answer the proxy makes comes with one log line saying why: the
error, the phase it happened in, the peer and the attempt count."""

from __future__ import annotations

import logging
import subprocess
import time

from propylon import HttpPeer, ProxyHttp
from proxy_support import dead_port


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
