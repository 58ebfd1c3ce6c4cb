"""Abusive HTTP/2 clients against a Propylon listener (``HttpProxyApp`` with h2c):
raw frames on a plain socket, built with the ``h2`` library or hyperframe.

Each flood is sent whole (1,000 frames, or 50 past the limit) and then nothing
more: if the server has not cut the client off within those frames, no GOAWAY
ever comes. Floods are answered with GOAWAY (ENHANCE_YOUR_CALM) and a dropped
connection, even for a client that never reads; a client that does not read is
not read from, and cut off if it keeps asking for replies; a reset stream is
never sent upstream.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from hpack import Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, HeadersFrame, PingFrame, PriorityFrame,
                              SettingsFrame, WindowUpdateFrame)

from h2_support import ProxyThread, ServerThread, demo_handler, make_cert, server_tls_context, start_counting_origin
from propylon.protocols.http.v2.server import H2Options
from propylon.proxy.proxy_trait import ProxyHttp
from propylon.upstreams.peer import HttpPeer

pytestmark = pytest.mark.timeout(90)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize()
CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
GET = [(":method", "GET"), (":scheme", "http"), (":authority", "t.test"), (":path", "/")]
POST = [(":method", "POST"), (":scheme", "http"), (":authority", "t.test"), (":path", "/up")]


class To(ProxyHttp):
    """Proxies everything to ``address``; records what the engine did."""

    def __init__(self, address) -> None:
        self.address = address
        self.peers_asked = 0

    async def upstream_peer(self, session, ctx) -> HttpPeer:
        self.peers_asked += 1
        return HttpPeer(self.address, False, "")


@pytest.fixture
def origin_and_proxy():
    """(proxy thread, origin counts, proxy object) with default H2Options."""
    proxy = To(("127.0.0.1", 0))
    with ProxyThread(proxy) as p:
        server, counts = p.run(start_counting_origin())
        proxy.address = server.sockets[0].getsockname()[:2]
        try:
            yield p, counts, proxy
        finally:
            p.call(server.close)


def _read_goaway(sock: socket.socket, timeout: float = 10.0) -> tuple[int | None, bool]:
    """Read until the server closes (or ``timeout``): (GOAWAY error code or None, closed)."""
    sock.settimeout(timeout)
    data = bytearray()
    closed = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        except socket.timeout:
            break
        if not chunk:
            closed = True
            break
        data += chunk
    code = None
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        if data[pos + 3] == 7 and pos + 9 + 8 <= len(data):  # GOAWAY
            code = int.from_bytes(data[pos + 13:pos + 17], "big")
        pos += 9 + length
    return code, closed


def _send_all(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # cut off (or closed by the test) while still sending


def _header_block(headers: list) -> bytes:
    return Encoder().encode(headers)


def _flood(kind: str, n: int = 1000) -> bytes:
    """``n`` frames of one kind (with what they need before them)."""
    if kind == "PING":
        return b"".join(PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize() for i in range(n))
    if kind == "SETTINGS":
        return SettingsFrame(0).serialize() * n
    if kind == "WINDOW_UPDATE":
        return WindowUpdateFrame(0, window_increment=1).serialize() * n
    if kind == "PRIORITY":
        return b"".join(PriorityFrame(2 * i + 101, depends_on=0, stream_weight=16).serialize()
                        for i in range(n))
    if kind == "RST_STREAM":  # rapid reset: HEADERS + RST_STREAM pairs
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        c.data_to_send()
        for _ in range(n // 2):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, GET, end_stream=True)
            c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        return c.data_to_send()
    if kind == "empty DATA":
        head = HeadersFrame(1, _header_block(POST), flags=["END_HEADERS"]).serialize()
        return head + DataFrame(1, b"").serialize() * (n - 1)
    if kind == "empty CONTINUATION":
        block = _header_block(GET)
        head = HeadersFrame(1, block[:2]).serialize()  # END_HEADERS never comes
        return head + ContinuationFrame(1, b"").serialize() * (n - 1)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["PING", "SETTINGS", "WINDOW_UPDATE", "PRIORITY", "RST_STREAM",
                                  "empty DATA", "empty CONTINUATION"])
def test_each_flood_gets_goaway_within_a_thousand_frames(origin_and_proxy, kind):
    p, counts, _ = origin_and_proxy
    with socket.create_connection(("127.0.0.1", p.port)) as sock:
        _send_all(sock, PREFACE + _flood(kind, 1000))
        code, closed = _read_goaway(sock)
    assert closed, f"{kind} flood: the connection stayed open"
    if kind == "empty CONTINUATION":
        # h2 itself refuses a 65th CONTINUATION frame when the frames trickle in
        # one by one: either way the client is told to go.
        assert code in (CALM, h2.errors.ErrorCodes.PROTOCOL_ERROR), code
    else:
        assert code == CALM, f"{kind} flood: GOAWAY {code}"
    assert counts["requests"] == 0
    deadline = time.monotonic() + 5
    while p.h2_connections() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert p.h2_connections() == []


def test_limits_given_to_http_proxy_service_apply(origin_and_proxy):
    opts = H2Options(max_ping_frames=3, pings_per_data_frame=0)
    with ProxyThread(To(origin_and_proxy[2].address), opts) as p:
        c = _RawClient(p.port)
        for i in range(3):
            c.conn.ping(b"ping-%03d" % i)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, GET, end_stream=True)
        c.flush()
        c.pump(lambda: any(isinstance(e, h2.events.StreamEnded) for e in c.events))
        c.conn.ping(b"one-more")
        c.flush()
        code, closed = _read_goaway(c.sock)
        c.sock.close()
    assert len([e for e in c.events if isinstance(e, h2.events.PingAckReceived)]) == 3
    assert closed and code == CALM


def test_continuation_flood_with_payload_is_cut_before_the_block_is_buffered(origin_and_proxy):
    # 16 KiB CONTINUATION frames: the block passes 4 x 64 KiB after 16 of them. The
    # block is valid HPACK (one indexed field, repeated), so a codec that decodes it
    # as it arrives (nghttp2) keeps reading until the guard cuts it off.
    p, _, _ = origin_and_proxy
    piece = b"\x82" * 16384
    flood = HeadersFrame(1, piece).serialize() + ContinuationFrame(1, piece).serialize() * 40
    with socket.create_connection(("127.0.0.1", p.port)) as sock:
        _send_all(sock, PREFACE + flood)
        code, closed = _read_goaway(sock)
    assert closed and code == CALM


def test_ten_thousand_headers_and_resets_in_one_write_trip_the_guard(origin_and_proxy):
    p, counts, proxy = origin_and_proxy
    flood = _flood("RST_STREAM", 20_000)
    with socket.create_connection(("127.0.0.1", p.port)) as sock:
        _send_all(sock, PREFACE + flood)
        code, closed = _read_goaway(sock)
    assert closed and code == CALM
    # Every stream was reset in the read that opened it: none went upstream.
    assert counts == {"connections": 0, "requests": 0}
    assert proxy.peers_asked == 0


def _tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock`` (1 established; 7 closed, e.g. reset; 8 the
    peer closed), learnt without reading anything."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def _wait_cut_off(sock: socket.socket, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _tcp_state(sock) == 1:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _served(c: "_RawClient") -> int:
    """GET / on ``c``, read normally, and the connection closed: the status."""
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, GET, end_stream=True)
    c.flush()
    c.pump(lambda: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in c.events))
    c.sock.close()
    heads = [e for e in c.events if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid]
    return int(dict(heads[0].headers)[b":status"])


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
@pytest.mark.parametrize("kind", ["PING", "SETTINGS"])
def test_a_never_reading_flooder_is_reset_right_after_the_limit(tmp_path, kind, tls):
    """The flood passes its limit by 50 frames and then nothing more is sent, and
    the client never reads: the server must drop the connection by itself (over
    TLS too, where a polite close would wait for the client's close_notify), and go
    on serving others."""
    ctx = client_ctx = None
    if tls:
        ctx = server_tls_context(*make_cert(tmp_path))
        client_ctx = ssl.create_default_context()
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        client_ctx.set_alpn_protocols(["h2"])
    opts = H2Options()
    limit = opts.max_ping_frames if kind == "PING" else opts.max_settings_frames
    flood = _flood(kind, limit + 50)

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        return client_ctx.wrap_socket(sock, server_hostname="localhost") if tls else sock

    with ServerThread(demo_handler, opts, ssl_ctx=ctx) as s:
        other = _RawClient(connect())  # already connected when the flood begins
        flooder = connect()
        flooder.sendall(PREFACE + flood)
        assert _wait_cut_off(flooder), f"{kind} flood: the connection stayed open"
        deadline = time.monotonic() + 5
        while s.call(lambda: len(s.connections)) > 1:
            assert time.monotonic() < deadline, "the server kept the flooder's connection"
            time.sleep(0.01)
        flooder.close()
        assert _served(other) == 200
        assert _served(_RawClient(connect())) == 200


@pytest.mark.parametrize("kind", ["PING", "SETTINGS"])
def test_a_never_reading_flooder_is_cut_off_once_its_replies_pile_up(origin_and_proxy, kind):
    """With the frame limits out of the way, a client that sends 5 MB of PINGs (or
    SETTINGS) and never reads the acknowledgements cannot make us buffer them: we
    stop reading it once our write buffer is full, and as it keeps asking for
    replies it cannot have, we cut it off.

    Small kernel buffers on both ends make the acknowledgements pile up in the
    server's transport at once, where they are measured while the connection lives.
    """
    address = origin_and_proxy[2].address
    opts = H2Options(max_ping_frames=10**9, max_settings_frames=10**9, max_write_buffer=256 * 1024)
    one = _flood(kind, 1)
    flood = one * (5_000_000 // len(one))
    with ProxyThread(To(address), opts, sndbuf=16384) as p:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        p.watch_h2()
        sock.connect(("127.0.0.1", p.port))
        sender = threading.Thread(target=_send_all, args=(sock, PREFACE + flood), daemon=True)
        sender.start()
        deadline = time.monotonic() + 60
        while not p.h2_connections_seen():  # (it may be cut off before a look finds it open)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        conn = p.h2_connections_seen()[0]
        most = 0
        while conn in p.h2_connections():
            assert time.monotonic() < deadline, "the flooder was never cut off"
            most = max(most, p.call(conn.transport.get_write_buffer_size))
            time.sleep(0.01)
        sender.join(10)
        cut_off = _wait_cut_off(sock, 0)
        sock.close()
        assert _served(_RawClient(p.port)) == 200
    assert cut_off
    assert not sender.is_alive()
    counted = conn._frames.pings if kind == "PING" else conn._frames.settings
    # What was read is bounded by our write buffer and the kernel's, not by the flood.
    assert counted * len(one) <= opts.max_write_buffer + (512 << 10) < len(flood) // 4, counted
    assert most < 4 << 20
    assert most <= opts.max_write_buffer + opts.max_frames_per_turn * len(one), most


class _Gated(To):
    """Holds each request in ``where`` (a hook) until ``gate`` opens."""

    def __init__(self, address, where: str) -> None:
        super().__init__(address)
        self.where = where
        self.entered = threading.Event()
        self.done = threading.Event()
        self.gate: asyncio.Event | None = None
        self.errors: list = []

    async def _hold(self, where: str) -> None:
        if where == self.where:
            self.entered.set()
            await self.gate.wait()

    async def request_filter(self, session, ctx) -> bool:
        await self._hold("request_filter")
        return False

    async def upstream_peer(self, session, ctx) -> HttpPeer:
        await self._hold("upstream_peer")
        return await super().upstream_peer(session, ctx)

    async def logging(self, session, e, ctx) -> None:
        self.errors.append(e)
        self.done.set()


class _RawClient:
    """An HTTP/2 client on the ``h2`` library over a socket (or a port to connect to)."""

    def __init__(self, where: int | socket.socket) -> None:
        self.sock = (socket.create_connection(("127.0.0.1", where), timeout=5) if isinstance(where, int)
                     else where)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.events: list = []
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def pump(self, until) -> None:
        deadline = time.monotonic() + 5
        while not until():
            assert time.monotonic() < deadline, "nothing more arrived"
            data = self.sock.recv(65536)
            assert data, "connection closed"
            self.events.extend(self.conn.receive_data(data))
            self.flush()


@pytest.mark.parametrize("where", ["request_filter", "upstream_peer", None])
def test_a_stream_reset_before_its_request_went_upstream_never_reaches_it(where):
    proxy = _Gated(("127.0.0.1", 0), where or "nowhere")
    with ProxyThread(proxy) as p:
        server, counts = p.run(start_counting_origin())
        proxy.address = server.sockets[0].getsockname()[:2]
        proxy.gate = p.call(asyncio.Event)
        c = _RawClient(p.port)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, GET, end_stream=True)
        c.flush()
        if where is not None:
            assert proxy.entered.wait(5)
            c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            c.conn.ping(b"after-rs")  # its ACK means the reset was handled
            c.flush()
            c.pump(lambda: any(isinstance(e, h2.events.PingAckReceived) for e in c.events))
            p.loop.call_soon_threadsafe(proxy.gate.set)
        else:
            c.pump(lambda: any(isinstance(e, h2.events.StreamEnded) for e in c.events))
        assert proxy.done.wait(5)
        c.sock.close()
        p.call(server.close)
    if where is None:  # the same request, not reset, does reach the origin
        assert counts == {"connections": 1, "requests": 1} and proxy.errors == [None]
        return
    assert counts == {"connections": 0, "requests": 0}
    assert proxy.peers_asked == (1 if where == "upstream_peer" else 0)
    assert "client" in str(proxy.errors[0])


def test_h2load_through_the_listener_is_untouched_by_the_guards(origin_and_proxy):
    p, counts, _ = origin_and_proxy
    r = subprocess.run(["h2load", "-n", "2000", "-c", "10", "-m", "10", f"http://127.0.0.1:{p.port}/"],
                       capture_output=True, text=True, timeout=120)
    assert "2000 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
    assert counts["requests"] == 2000
