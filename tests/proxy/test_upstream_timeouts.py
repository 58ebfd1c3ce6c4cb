"""Upstream timeouts: a backend that accepts and never answers costs the client one
read timeout and a 502, never an open-ended wait (defaults: 60 s, like nginx)."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from propylon import HttpPeer, PeerOptions, ProxyHttp
from propylon.upstreams.peer import DEFAULT_OPTIONS

SLOW = os.environ.get("PROPYLON_SLOW_TESTS") == "1"


class NeverAnswers:
    """An origin handler that reads the request, then stays silent until the
    proxy hangs up; ``hung_up`` records when that happened."""

    def __init__(self) -> None:
        self.hung_up: float | None = None

    async def __call__(self, up, reader: asyncio.StreamReader, writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        while await reader.read(65536):
            pass
        self.hung_up = time.monotonic()


class ToOrigin(ProxyHttp):
    """Proxies to one origin with the options ``options`` (or, per path, ``by_path``)."""

    def __init__(self, port: int, options: PeerOptions | None, by_path: dict | None = None) -> None:
        self.port, self.options, self.by_path = port, options, by_path or {}

    async def upstream_peer(self, session, ctx):
        options = self.by_path.get(session.req_header.path, self.options)
        return HttpPeer(("127.0.0.1", self.port), False, "", options)


def get(port: int, limit: float, path: str = "/") -> tuple[bytes, float]:
    """One GET on a raw socket; the reply (until close or ``limit`` s) and when it came."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        out = bytearray()
        try:
            while b"\r\n\r\n" not in out:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
    return bytes(out), time.monotonic() - t0


def test_defaults_are_sixty_seconds_and_shared():
    opts = PeerOptions()
    assert (opts.connection_timeout, opts.read_timeout, opts.write_timeout) == (60.0, 60.0, 60.0)
    assert opts.total_connection_timeout is None and opts.idle_timeout is None
    # A peer that sets no option reads the one shared default object.
    assert HttpPeer(("127.0.0.1", 1)).settings() is DEFAULT_OPTIONS
    assert DEFAULT_OPTIONS.read_timeout == 60.0


def assert_upstream_dropped(silent: NeverAnswers) -> None:
    """The proxy closed its connection to the silent origin as well."""
    deadline = time.monotonic() + 3
    while silent.hung_up is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert silent.hung_up is not None


def test_never_answering_backend_gets_502_at_the_read_timeout(start_proxy, upstream):
    silent = NeverAnswers()
    origin = upstream(silent)
    p = start_proxy(ToOrigin(origin.port, PeerOptions(read_timeout=1)))
    reply, took = get(p.port, limit=10)
    assert reply.startswith(b"HTTP/1.1 502 "), reply[:80]
    assert 0.9 <= took < 5, took
    assert_upstream_dropped(silent)


async def answers_once_then_hangs(up, reader: asyncio.StreamReader, writer) -> None:
    """The first request on a connection gets ``200 ok``; the next one, silence."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    while await reader.read(65536):
        pass


def test_a_pooled_connection_keeps_to_the_shorter_timeout_of_its_next_request(start_proxy, upstream):
    origin = upstream(answers_once_then_hangs)
    # /first allows 60 s (the default), /second 1 s; both share the pooled connection.
    p = start_proxy(ToOrigin(origin.port, None, {"/second": PeerOptions(read_timeout=1)}))
    reply, _ = get(p.port, limit=5, path="/first")
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:80]
    reply, took = get(p.port, limit=10, path="/second")
    assert reply.startswith(b"HTTP/1.1 502 "), reply[:80]
    assert 0.9 <= took < 5, took
    assert origin.connections == 1  # the second request did reuse the first one's connection


async def trickles(up, reader: asyncio.StreamReader, writer) -> None:
    """A chunked body in six pieces 0.4 s apart: slow, but never silent for 1 s."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(6):
        await asyncio.sleep(0.4)
        writer.write(b"1\r\nx\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def test_the_read_timeout_counts_each_wait_not_the_whole_response(start_proxy, upstream):
    origin = upstream(trickles)
    p = start_proxy(ToOrigin(origin.port, PeerOptions(read_timeout=1)))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        out = bytearray()
        while not out.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            assert chunk, bytes(out)
            out += chunk
    assert out.startswith(b"HTTP/1.1 200 ") and out.count(b"1\r\nx\r\n") == 6


@pytest.mark.skipif(not SLOW, reason="waits a full minute; set PROPYLON_SLOW_TESTS=1")
def test_default_read_timeout_ends_the_wait_after_a_minute(start_proxy, upstream):
    silent = NeverAnswers()
    origin = upstream(silent)
    p = start_proxy(ToOrigin(origin.port, None))
    reply, took = get(p.port, limit=90)
    assert reply.startswith(b"HTTP/1.1 502 "), reply[:80]
    assert 59 <= took < 70, took
    assert_upstream_dropped(silent)
