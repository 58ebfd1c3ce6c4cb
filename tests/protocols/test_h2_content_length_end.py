"""Pingora conformance: an HTTP/2 upstream response with Content-Length is complete
once that many bytes have arrived, even if END_STREAM has not come yet, and the next
request on the client connection is not held up.

The origin (h2c, written with ``h2`` here) answers each request with its whole body
at once but sends the END_STREAM of a response only when the next request arrives:
a proxy that waited for END_STREAM before answering the client's next request would
wait forever.
"""

from __future__ import annotations

import asyncio
import http.client

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from h2_support import ProxyThread
from propylon.upstreams.peer import ALPN, HttpPeer, PeerOptions
from propylon.proxy.proxy_trait import ProxyHttp

pytestmark = pytest.mark.timeout(60)


class LateEndOrigin(asyncio.Protocol):
    """See the module docstring; ``seen`` is shared by its connections."""

    def __init__(self, seen: dict) -> None:
        self.seen = seen
        self.pending = 0  # the stream whose END_STREAM is held back

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.seen["connections"] += 1
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.h2.initiate_connection()
        transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        for ev in self.h2.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                if self.pending:
                    try:
                        self.h2.end_stream(self.pending)
                    except h2.exceptions.StreamClosedError:
                        pass  # the proxy had already let it go
                path = dict(ev.headers)[b":path"].decode()
                self.seen["paths"].append(path)
                body = f"answer to {path}".encode()
                self.h2.send_headers(ev.stream_id, [(":status", "200"), ("content-length", str(len(body)))])
                self.h2.send_data(ev.stream_id, body)
                self.pending = ev.stream_id
            elif isinstance(ev, h2.events.StreamReset):
                self.seen["resets"].append(ev.stream_id)
        self.transport.write(self.h2.data_to_send())


class ToOrigin(ProxyHttp):
    def __init__(self) -> None:
        self.address = ("127.0.0.1", 0)

    async def upstream_peer(self, session, ctx) -> HttpPeer:
        return HttpPeer(self.address, False, "", PeerOptions(alpn=ALPN.H2))


def test_content_length_ends_the_response_before_end_stream():
    proxy = ToOrigin()
    seen: dict = {"connections": 0, "paths": [], "resets": []}
    with ProxyThread(proxy) as p:
        async def start() -> asyncio.AbstractServer:
            return await asyncio.get_running_loop().create_server(lambda: LateEndOrigin(seen), "127.0.0.1", 0)

        server = p.run(start())
        proxy.address = server.sockets[0].getsockname()[:2]
        client = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
        try:
            answers, socks = [], []
            for path in ("/one", "/two", "/three"):
                client.request("GET", path)
                resp = client.getresponse()
                answers.append((resp.status, resp.read()))
                socks.append(client.sock)
        finally:
            client.close()
            p.call(server.close)
    assert answers == [(200, b"answer to /one"), (200, b"answer to /two"), (200, b"answer to /three")]
    assert socks[0] is not None and socks.count(socks[0]) == 3  # one client connection
    # One upstream connection carried the three streams; a stream complete by its
    # length was let go (cancelled) rather than waited on, before the next request.
    assert seen["connections"] == 1 and seen["paths"] == ["/one", "/two", "/three"]
    assert seen["resets"][:2] == [1, 3]
