"""Property-based checks of the HTTP/1 server codec over a real loopback socket.

A proxy whose ``request_filter`` answers every request itself (``200`` and a body
echoing the method, the path and the request body) is served on 127.0.0.1. Hypothesis
sends it valid requests (pipelined, cut at arbitrary points), mutated requests and
arbitrary bytes. Whatever arrives, the server must answer with well-formed responses
(200s for what it parsed, at most one final 4xx/5xx refusal), close the connection
once the client closes its side (never leave it stuck), and never let an exception
escape (no traceback in the log, nothing reaching the event loop's handler).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import httptools
import pytest
import uvloop
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from propylon import Error, ShutdownWatch
from propylon.proxy.service import HttpProxyApp
from support import Echo

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
#: Seconds the server may take to answer and close once the client has closed its side.
CLOSE_WITHIN = 5.0


class Tracebacks(logging.Handler):
    """Keeps every log record that carries an exception other than a propylon Error."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not isinstance(record.exc_info[1], Error):
            self.records.append(record)


class EchoServer:
    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.loop_errors: list[dict] = []
        self.loop.set_exception_handler(lambda loop, context: self.loop_errors.append(context))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        app = HttpProxyApp(Echo())

        async def serve():
            return await asyncio.get_running_loop().create_server(
                app.protocol_factory(ShutdownWatch()), "127.0.0.1", 0)

        self.server = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        self.tracebacks = Tracebacks()
        logging.getLogger("propylon").addHandler(self.tracebacks)

    def close(self) -> None:
        logging.getLogger("propylon").removeHandler(self.tracebacks)
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def assert_clean(self) -> None:
        assert not self.loop_errors, self.loop_errors
        assert not self.tracebacks.records, [r.getMessage() for r in self.tracebacks.records]


@pytest.fixture(scope="module")
def echo():
    server = EchoServer()
    yield server
    server.close()


class Responses:
    """Parses the server's byte stream as a sequence of HTTP/1.1 responses."""

    def __init__(self) -> None:
        self.done: list[tuple[int, bytes]] = []
        self._body = bytearray()
        self._parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self._parser.get_status_code(), bytes(self._body)))
        self._body.clear()

    def feed(self, data: bytes) -> None:
        self._parser.feed_data(data)


def exchange(port: int, pieces: list[bytes], *, close: bool, expect: int = 0) -> tuple[Responses, bool]:
    """Send ``pieces`` one write each. With ``close``, shut our side and read until the
    server closes; else read until ``expect`` responses came. Returns the responses
    and whether the server closed the connection."""
    got = Responses()
    with socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WITHIN) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            try:
                s.sendall(piece)
            except OSError:
                break  # the server refused and closed already
        if close:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        while close or len(got.done) < expect:
            try:
                data = s.recv(65536)
            except socket.timeout:
                raise AssertionError(f"connection stuck: no close within {CLOSE_WITHIN}s; "
                                     f"responses so far {got.done!r}") from None
            except ConnectionResetError:
                return got, True
            if not data:
                return got, True
            got.feed(data)
    return got, False


def check_responses(got: Responses) -> None:
    """200s for parsed requests, then at most one error status, which ends the stream."""
    statuses = [status for status, _ in got.done]
    event(f"statuses {sorted(set(statuses))}")  # shown by --hypothesis-show-statistics
    for i, status in enumerate(statuses):
        assert status == 200 or 400 <= status < 600, statuses
        if status != 200:
            assert i == len(statuses) - 1, f"a refusal must be the last response: {statuses}"
    for status, body in got.done:
        if status == 200:
            method, path, _ = body.split(b" ", 2)
            assert method.isalpha() and path, body[:80]


# --- strategies -------------------------------------------------------------------------
TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
SKIP_NAMES = {"content-length", "transfer-encoding", "connection", "upgrade", "expect", "te",
              "host", "keep-alive", "proxy-connection", "http2-settings", "trailer"}

methods = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"])
paths = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~/%?=&", max_size=40).map(
    lambda p: b"/" + p.encode())
header_names = st.text(alphabet=TOKEN, min_size=1, max_size=20).filter(lambda n: n.lower() not in SKIP_NAMES)
header_values = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=40)
headers = st.lists(st.tuples(header_names, header_values), max_size=6)
bodies = st.binary(max_size=300)


@st.composite
def requests(draw) -> tuple[bytes, bytes]:
    """One valid HTTP/1.1 request and the body the echo handler will return."""
    method, path, hdrs, body = draw(methods), draw(paths), draw(headers), draw(bodies)
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: fuzz.propylon.test"]
    lines += [f"{n}: {v}".encode() for n, v in hdrs]
    chunked = bool(body) and draw(st.booleans())
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(1, len(body)), max_size=4, unique=True)))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)]) if a < b]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    else:
        if body or method in (b"POST", b"PUT", b"PATCH"):
            lines.append(b"Content-Length: %d" % len(body))
        payload = body
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload, method + b" " + path + b" " + body


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)]) if a < b] or [data]


@st.composite
def mutated(draw) -> bytes:
    """A valid request sequence with a few bytes flipped, dropped, inserted or repeated."""
    data = bytearray(b"".join(r for r, _ in draw(st.lists(requests(), min_size=1, max_size=3))))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["flip", "drop", "insert", "repeat"]))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "drop":
            del data[i:i + draw(st.integers(1, 16))]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from([b"\r\n", b"\n", b"\r", b"\0", b" ", b":", b"\t",
                                              b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
                                              b"0\r\n\r\n", b"GET / HTTP/1.1\r\n", b"\xff\xfe"]))
        else:
            data[i:i] = data[i:i + draw(st.integers(1, 64))]
    return bytes(data)


http_words = st.sampled_from([b"GET", b"POST", b" ", b"/", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"\r\n",
                              b"\n", b"Host: a", b"Content-Length: ", b"Transfer-Encoding: chunked",
                              b"-1", b"99999999999999999999", b"0", b"a", b"\r\n\r\n", b":", b"\0",
                              b"Connection: close", b"Expect: 100-continue", b"Upgrade: x"])


# --- properties ---------------------------------------------------------------------------
@FUZZ
@given(st.lists(requests(), min_size=1, max_size=4), st.lists(st.integers(0, 5000), max_size=6))
def test_valid_requests_in_any_pieces_parse_exactly(echo, reqs, cuts):
    data = b"".join(raw for raw, _ in reqs)
    got, closed = exchange(echo.port, split(data, cuts), close=False, expect=len(reqs))
    assert got.done == [(200, expected) for _, expected in reqs]
    assert not closed
    echo.assert_clean()


@FUZZ
@given(mutated(), st.lists(st.integers(0, 5000), max_size=4))
def test_mutated_requests_get_answers_or_a_clean_refusal(echo, data, cuts):
    got, closed = exchange(echo.port, split(data, cuts), close=True)
    assert closed
    check_responses(got)
    echo.assert_clean()


@FUZZ
@given(st.one_of(st.binary(max_size=2000), st.lists(http_words, max_size=40).map(b"".join)))
def test_arbitrary_bytes_never_break_the_server(echo, data):
    got, closed = exchange(echo.port, [data], close=True)
    assert closed
    check_responses(got)
    echo.assert_clean()


def test_a_refusal_closes_without_the_client_closing(echo):
    got, closed = exchange(echo.port, [b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"], close=False, expect=1)
    assert [s for s, _ in got.done] == [400]
    echo.assert_clean()
