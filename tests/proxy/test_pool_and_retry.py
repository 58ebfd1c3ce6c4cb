"""Upstream connection reuse, eviction and Pingora's retry rules."""

from __future__ import annotations

import asyncio
import subprocess
import time

from propylon import HttpPeer, PeerOptions, ProxyHttp

from proxy_support import raw_exchange, read_request
from support import free_port


def get(url: str) -> int:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                         capture_output=True, text=True, timeout=20)
    return int(out.stdout or 0)


class Reuse(ProxyHttp):
    def __init__(self, port: int, options: PeerOptions | None = None, retry_connect: bool = False) -> None:
        self.port = port
        self.options = options
        self.retry_connect = retry_connect
        self.reused: list[bool] = []
        self.peers = 0
        self.connect_failures = 0

    async def upstream_peer(self, session, ctx):
        self.peers += 1
        return HttpPeer(("127.0.0.1", self.port), False, "", self.options)

    async def connected_to_upstream(self, session, reused, peer, digest, ctx):
        self.reused.append(reused)

    def fail_to_connect(self, session, peer, ctx, e):
        self.connect_failures += 1
        if self.retry_connect:
            e.set_retry(True)
        return e


def test_connection_reused_across_client_connections(start_proxy, upstream):
    up = upstream()
    proxy = Reuse(up.port)
    p = start_proxy(proxy)
    assert get(p.url + "/a") == 200
    assert get(p.url + "/b") == 200
    assert proxy.reused == [False, True]
    assert up.connections == 1


def test_idle_timeout_evicts(start_proxy, upstream):
    up = upstream()
    proxy = Reuse(up.port, PeerOptions(idle_timeout=0.2))
    p = start_proxy(proxy)
    assert get(p.url + "/a") == 200
    time.sleep(0.5)
    assert get(p.url + "/b") == 200
    assert proxy.reused == [False, False]
    assert up.connections == 2


def test_upstream_closing_idle_connection_is_not_reused(start_proxy, upstream):
    async def one_shot(up, reader, writer):
        await read_request(up, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)  # keep-alive was promised, but the origin closes

    up = upstream(one_shot)
    proxy = Reuse(up.port)
    p = start_proxy(proxy)
    assert get(p.url + "/a") == 200
    time.sleep(0.3)
    assert get(p.url + "/b") == 200
    assert proxy.reused == [False, False]


def test_failure_on_reused_connection_is_retried(start_proxy, upstream):
    """The origin drops a pooled connection as the next request arrives: the
    request is sent again on a new connection and the client never notices."""

    async def drop_second(up, reader, writer):
        await read_request(up, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_request(up, reader)  # the second request: close without answering

    up = upstream(drop_second)
    proxy = Reuse(up.port)
    p = start_proxy(proxy)
    assert get(p.url + "/a") == 200
    reply = raw_exchange(p.port, b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    assert reply.startswith(b"HTTP/1.1 200")
    assert proxy.reused == [False, True, False]
    assert up.received.count(b"hello") == 2  # the buffered body was sent again


def test_connect_error_not_retried_by_default(start_proxy):
    proxy = Reuse(free_port())
    p = start_proxy(proxy)
    assert get(p.url + "/") == 502
    assert proxy.peers == 1


def test_connect_error_retried_when_asked_bounded_by_max_retries(start_proxy):
    class Conf:
        max_retries = 3

    proxy = Reuse(free_port(), retry_connect=True)
    p = start_proxy(proxy, conf=Conf())
    assert get(p.url + "/") == 502
    assert proxy.peers == 3 and proxy.connect_failures == 3


def test_pool_size_bounds_idle_connections(start_proxy, upstream):
    class Conf:
        upstream_keepalive_pool_size = 2

    ups = [upstream() for _ in range(4)]

    class Many(ProxyHttp):
        async def upstream_peer(self, session, ctx):
            return HttpPeer(("127.0.0.1", ups[int(session.req_header.path[1:])].port), False, "")

    p = start_proxy(Many(), conf=Conf())
    for i in range(4):
        assert get(f"{p.url}/{i}") == 200
    assert len(p.app.engine.connector.pool) == 2
