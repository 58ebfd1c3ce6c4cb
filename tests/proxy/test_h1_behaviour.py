"""HTTP/1.1 through the proxy: keep-alive, pipelining, framing, 1xx, trailers,
upgrades, disconnects — against the lab's upstreams and scripted ones."""

from __future__ import annotations

import json
import socket
import subprocess
import time


from propylon import HttpPeer, PeerOptions, ProxyHttp

from proxy_support import raw_exchange, read_request, replying


class ToAddr(ProxyHttp):
    """Forwards to a fixed (host, port) or Unix socket path."""

    def __init__(self, addr, options: PeerOptions | None = None) -> None:
        self.addr = addr
        self.options = options

    async def upstream_peer(self, session, ctx):
        if isinstance(self.addr, str):
            return HttpPeer.new_uds(self.addr, False, "", self.options)
        return HttpPeer(self.addr, False, "", self.options)


def curl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", *args], capture_output=True, timeout=timeout)


def read_response(s: socket.socket) -> tuple[bytes, bytes]:
    """One Content-Length-framed response from a socket: (head, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "connection closed before a response"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    length = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += s.recv(65536)
    return head, body


def test_keepalive_reuses_both_connections(lab, start_proxy):
    p = start_proxy(ToAddr(lab.address("blue")))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        seen = []
        for _ in range(3):
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(s)
            assert head.startswith(b"HTTP/1.1 200")
            assert b"connection: close" not in head.lower()
            seen.append(json.loads(body)["connection_requests"])
    # the upstream counts requests per connection: one pooled connection served all
    assert seen[1] == seen[0] + 1 and seen[2] == seen[0] + 2


def test_pipelined_requests_answered_in_order(lab, start_proxy):
    p = start_proxy(ToAddr(lab.address("blue")))
    reqs = b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    reqs += b"GET /echo?n=last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = raw_exchange(p.port, reqs)
    assert reply.count(b"HTTP/1.1 200 OK") == 6
    order = [int(x) for x in __import__("re").findall(rb'"query": "n=(\d+)"', reply)]
    assert order == [0, 1, 2, 3, 4]


def test_chunked_request_body_reaches_upstream(lab, start_proxy):
    p = start_proxy(ToAddr(lab.address("blue")))
    body = b"hello chunked world"
    data = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"6\r\nhello \r\n8\r\nchunked \r\n5\r\nworld\r\n0\r\n\r\n")
    reply = raw_exchange(p.port, data)
    doc = json.loads(reply.split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[-1].rsplit(b"\r\n0\r\n", 1)[0]
                     if b"chunked" in reply.split(b"\r\n\r\n")[0].lower() else reply.split(b"\r\n\r\n", 1)[1])
    assert doc["body"] == body.decode()
    assert doc["body_length"] == len(body)


def test_head_204_304_have_no_body_and_keep_connection(lab, start_proxy):
    p = start_proxy(ToAddr(lab.address("blue")))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        for req, status in ((b"HEAD /size?bytes=1000 HTTP/1.1\r\nHost: x\r\n\r\n", 200),
                            (b"GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n", 204),
                            (b"GET /status/304 HTTP/1.1\r\nHost: x\r\n\r\n", 304)):
            s.sendall(req)
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            assert head.startswith(b"HTTP/1.1 %d" % status)
            assert head.endswith(b"\r\n\r\n")  # nothing after the head
        if True:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(4096)
            assert got.startswith(b"HTTP/1.1 200"), got  # the same connection still works
    head_reply = curl("-I", p.url + "/size?bytes=1000").stdout
    assert b"content-length: 1000" in head_reply.lower()


def test_expect_100_continue(lab, start_proxy):
    p = start_proxy(ToAddr(lab.address("blue")))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"12345")
        reply = b""
        while b'"body_length": 5' not in reply:
            chunk = s.recv(65536)
            assert chunk
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"expect" not in reply.split(b"\r\n\r\n", 1)[1].lower()


def test_trailers_pass_through(start_proxy, upstream):
    up = upstream(replying(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                           b"5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n"))
    p = start_proxy(ToAddr(("127.0.0.1", up.port)))
    reply = raw_exchange(p.port, b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n")
    assert b"transfer-encoding: chunked" in reply.lower()
    assert reply.endswith(b"5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n")


def test_hop_by_hop_headers_removed(lab, start_proxy):
    p = start_proxy(ToAddr(lab.address("blue")))
    out = curl(p.url + "/echo", "-H", "Connection: keep-alive, X-Secret", "-H", "X-Secret: 1",
               "-H", "Keep-Alive: timeout=5", "-H", "Proxy-Connection: x", "-H", "X-Kept: yes")
    names = [n.lower() for n, _ in json.loads(out.stdout)["headers"]]
    assert "x-kept" in names
    for gone in ("x-secret", "keep-alive", "proxy-connection"):
        assert gone not in names
    assert names.count("connection") <= 1


def test_uds_upstream(lab, start_proxy):
    p = start_proxy(ToAddr(lab.address("uds")))
    out = curl(p.url + "/")
    assert b"Response from UDS" in out.stdout


def test_client_disconnect_cancels_upstream(start_proxy, upstream):
    state = {"closed": None}

    async def slow_handler(up, reader, writer):
        await read_request(up, reader)
        t0 = time.monotonic()
        # Wait for the proxy to give up on us: EOF on our side.
        data = await reader.read(100)
        state["closed"] = (data, time.monotonic() - t0)

    up = upstream(slow_handler)
    p = start_proxy(ToAddr(("127.0.0.1", up.port)))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
    deadline = time.monotonic() + 3
    while state["closed"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state["closed"] is not None and state["closed"][0] == b""
    assert state["closed"][1] < 2


def test_websocket_upgrade_tunnel(lab, start_proxy):
    import websockets.sync.client as wsc

    p = start_proxy(ToAddr(lab.address("websocket")))
    with wsc.connect(f"ws://127.0.0.1:{p.port}/") as ws:
        for i in range(3):
            ws.send(f"ping {i}")
            assert ws.recv(timeout=5) == f"ping {i}"


def test_large_download_and_upload_stream(lab, start_proxy):
    p = start_proxy(ToAddr(lab.address("blue")))
    out = curl(p.url + "/size?bytes=20000000", "-o", "/dev/null", "-w", "%{size_download}")
    assert out.stdout == b"20000000"
    out = curl(p.url + "/size?bytes=5000000&chunked=1", "-o", "/dev/null", "-w", "%{size_download}")
    assert out.stdout == b"5000000"
    proc = subprocess.run(
        f"head -c 20000000 /dev/zero | curl -s -T - {p.url}/echo", shell=True, capture_output=True, timeout=60)
    assert json.loads(proc.stdout)["body_length"] == 20000000


def test_proxy_listens_on_a_unix_socket(lab, loop_thread, tmp_path):
    import asyncio

    from propylon.proxy.service import HttpProxyApp
    from propylon.shutdown import ShutdownWatch

    path = str(tmp_path / "proxy.sock")
    app = HttpProxyApp(ToAddr(lab.address("blue")))

    async def serve():
        return await asyncio.get_running_loop().create_unix_server(app.protocol_factory(ShutdownWatch()), path)

    server = loop_thread.run(serve())
    try:
        out = curl("--unix-socket", path, "http://localhost/echo")
        doc = json.loads(out.stdout)
        assert doc["path"] == "/echo"
    finally:
        server.close()


def test_interim_103_is_relayed(start_proxy, upstream):
    up = upstream(replying(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                           b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    p = start_proxy(ToAddr(("127.0.0.1", up.port)))
    reply = raw_exchange(p.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK")
    assert reply.endswith(b"ok")


def test_session_knows_when_the_client_connection_is_reused(lab, start_proxy):
    seen: list[bool] = []

    class Watch(ToAddr):
        async def request_filter(self, session, ctx):
            seen.append(session.downstream_reused)
            return False

    p = start_proxy(Watch(lab.address("blue")))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _ = read_response(s)
            assert head.startswith(b"HTTP/1.1 200")
    assert seen == [False, True]


def test_http10_clients_get_http10_framing(start_proxy, upstream):
    """An HTTP/1.0 client never gets chunked encoding: an unframed upstream body is
    delimited by closing the connection, and keep-alive is announced only when asked."""
    up = upstream(replying(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
    p = start_proxy(ToAddr(("127.0.0.1", up.port)))
    reply = raw_exchange(p.port, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower() and body == b"hello"
    # The request line split over two reads: the version still comes from the parser.
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"GET / HTT")
        time.sleep(0.05)
        s.sendall(b"P/1.0\r\nHost: x\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert b"transfer-encoding" not in out.lower() and out.endswith(b"\r\n\r\nhello")

    ok = start_proxy(ToAddr(("127.0.0.1", upstream().port)))
    with socket.create_connection(("127.0.0.1", ok.port), timeout=5) as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            head, body = read_response(s)
            assert b"connection: keep-alive" in head.lower() and body == b"ok"
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(s)
        assert b"connection:" not in head.lower() and body == b"ok"
