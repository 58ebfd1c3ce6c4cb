"""The downstream HTTP/1 codec fed raw request bytes, no sockets.

What the codec writes back is read with ``h11``, an HTTP/1 implementation that
shares no code with ours, so framing mistakes cannot cancel out.
"""

from __future__ import annotations

import asyncio
from typing import Optional

import h11
import pytest

from propylon.protocols.http.header import HeaderMap, ResponseHeader
from propylon.protocols.http.v1.server import HttpServerOptions

from protocols_support import answer, connect, h1_server, read_all, settle


class Response:
    """One response as h11 read it."""

    def __init__(self, status: int, headers: list, body: bytes, trailers: list) -> None:
        self.status = status
        self.headers = {k.decode().lower(): v.decode() for k, v in headers}
        self.body = body
        self.trailers = {k.decode().lower(): v.decode() for k, v in trailers}


def read_responses(data: bytes, methods: list[bytes]) -> list[Response]:
    """Parse ``data`` as the responses to requests with ``methods``, in order."""
    client = h11.Connection(h11.CLIENT)
    out: list[Response] = []
    client.receive_data(data)
    for method in methods:
        client.send(h11.Request(method=method, target="/", headers=[("Host", "t")]))
        client.send(h11.EndOfMessage())
        status, headers, body, trailers = 0, [], b"", []
        while True:
            ev = client.next_event()
            if ev is h11.NEED_DATA:
                client.receive_data(b"")  # what was fed is all there is
                continue
            if isinstance(ev, h11.InformationalResponse):
                continue
            if isinstance(ev, h11.Response):
                status, headers = ev.status_code, list(ev.headers)
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                trailers = list(ev.headers)
                break
            elif isinstance(ev, h11.ConnectionClosed):
                raise AssertionError(f"connection closed before response {len(out) + 1} ended")
        out.append(Response(status, headers, body, trailers))
        if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
            break
        client.start_next_cycle()
    return out


class Recorder:
    """A handler that reads each request whole and answers ``<method> <path> <body>``."""

    def __init__(self, respond=None) -> None:
        self.seen: list = []  # (method, path, body, trailers, headers) per request
        self.respond = respond

    async def __call__(self, session) -> bool:
        body = await read_all(session)
        req = session.req
        self.seen.append((req.method, req.path, body, session.trailers, req.headers))
        if self.respond is not None:
            await self.respond(session, body)
        else:
            text = f"{req.method} {req.path} ".encode() + body
            answer(session, 200, text, len(text))
        await session.drain()
        return session.keepalive


async def exchange(pieces: list[bytes], handler=None, options: Optional[HttpServerOptions] = None,
                   eof: bool = False):
    """Feed ``pieces`` one read at a time; return (bytes written, closed?, handler)."""
    handler = handler or Recorder()
    conn = h1_server(handler, options)
    transport = connect(conn)
    for piece in pieces:
        if transport.closed:
            break
        conn.data_received(piece)
        await settle()
    if eof and not transport.closed:
        conn.eof_received()
    await settle(lambda: transport.closed)
    written, closed = transport.take(), transport.closed
    if not closed:
        transport.close()  # the end of the test: the codec lets go of its task
        await settle()
    return written, closed, handler


def run(coro):
    return asyncio.run(coro)


GET = b"GET /%s HTTP/1.1\r\nHost: t\r\n\r\n"


# --- requests --------------------------------------------------------------------------
def test_pipelined_requests_are_answered_in_order_on_one_connection():
    data = GET % b"a" + GET % b"b" + b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz"
    written, closed, h = run(exchange([data]))
    replies = read_responses(written, [b"GET", b"GET", b"POST"])
    assert [r.body for r in replies] == [b"GET /a ", b"GET /b ", b"POST /c xyz"]
    assert not closed


def test_a_request_fed_one_byte_at_a_time():
    data = b"POST /slow?q=1 HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello"
    written, _, h = run(exchange([data[i:i + 1] for i in range(len(data))]))
    (reply,) = read_responses(written, [b"POST"])
    assert reply.body == b"POST /slow hello"
    assert h.seen[0][4].get("x-a") == "1"


def test_chunked_body_with_trailers():
    data = (b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: 42\r\nX-Other: a\r\n\r\n")
    written, closed, h = run(exchange([data[:40], data[40:71], data[71:]]))
    (method, path, body, trailers, _), = h.seen
    assert body == b"hello, world"
    assert trailers is not None and trailers.get("x-sum") == "42" and trailers.get("x-other") == "a"
    assert read_responses(written, [b"POST"])[0].status == 200
    assert not closed


def test_expect_100_continue_is_sent_when_the_body_is_read():
    data = b"PUT /e HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"

    async def main():
        h = Recorder()
        conn = h1_server(h)
        transport = connect(conn)
        conn.data_received(data)
        await settle(lambda: b"100 Continue" in transport.written)
        interim = bytes(transport.written)
        conn.data_received(b"ok")
        await settle(lambda: len(h.seen) == 1)
        await settle()
        transport.close()
        await settle()
        return interim, bytes(transport.written), h

    interim, written, h = run(main())
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert h.seen[0][2] == b"ok"
    assert read_responses(written[len(interim):], [b"PUT"])[0].body == b"PUT /e ok"


# --- refused requests ----------------------------------------------------------------------
REFUSED = {
    "content-length and transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "two different content-lengths": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    "a transfer coding other than chunked": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    "chunked not last": (  # llhttp itself refuses it
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    "transfer-encoding in HTTP/1.0": (
        b"POST / HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
    "space before the colon": (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length : 0\r\n\r\n", 400),
    "bare CR in a field": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", 400),
    "NUL in a field": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", 400),
    "no host in HTTP/1.1": (b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
    "two hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "not HTTP at all": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_ambiguous_or_malformed_requests_are_refused_and_the_connection_closed(name):
    data, status = REFUSED[name]
    written, closed, h = run(exchange([data + GET % b"smuggled"]))
    (reply,) = read_responses(written, [b"GET"])
    assert reply.status == status, written
    assert reply.headers.get("connection") == "close"
    assert closed
    assert h.seen == []  # nothing of the refused message, nor what followed it, reached the application


def test_a_bad_chunk_size_fails_the_body_read_and_nothing_after_it_is_parsed():
    errors = []

    class Answering(Recorder):
        async def __call__(self, session) -> bool:
            try:
                await super().__call__(session)
            except Exception as e:  # the application answers a body error itself
                errors.append(e)
                resp = ResponseHeader.build(400)
                resp.insert_header(b"Content-Length", b"0")
                session.write_header(resp, end_of_stream=True)
            return session.keepalive

    data = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nhi\r\nzz\r\n" + GET % b"smuggled")
    written, closed, h = run(exchange([data], handler=Answering()))
    (err,) = errors
    assert err.etype.name == "InvalidHTTPHeader" and err.esource.name.lower() == "downstream", err
    (reply,) = read_responses(written, [b"POST"])
    assert reply.status == 400 and closed
    assert h.seen == []  # the handler never finished a request, and /smuggled never came


def test_request_line_and_header_block_limits():
    opts = HttpServerOptions(max_request_line=64, max_header_bytes=256)
    long_target = b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    big_head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 300 + b"\r\n\r\n"
    for data, status in ((long_target, 414), (big_head, 431)):
        written, closed, h = run(exchange([data], options=opts))
        assert read_responses(written, [b"GET"])[0].status == status
        assert closed and h.seen == []


def test_a_header_block_that_never_ends_is_cut_at_the_limit():
    opts = HttpServerOptions(max_header_bytes=1024)
    pieces = [b"GET / HTTP/1.1\r\nHost: t\r\n"] + [b"X-Pad: " + b"p" * 90 + b"\r\n"] * 40
    written, closed, h = run(exchange(pieces, options=opts))
    assert read_responses(written, [b"GET"])[0].status == 431
    assert closed and h.seen == []


def test_client_closing_mid_body_fails_the_body_read():
    errors = []

    class Reader(Recorder):
        async def __call__(self, session) -> bool:
            try:
                while await session.read_body() is not None:
                    pass
            except Exception as e:  # the codec's error for a lost body
                errors.append(e)
            return False

    data = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly part"
    _, closed, _ = run(exchange([data], handler=Reader(), eof=True))
    assert closed
    (err,) = errors
    assert "closed" in str(err).lower()


# --- response framing -------------------------------------------------------------------------
async def _stream_reply(session, body):
    resp = ResponseHeader.build(200)
    session.write_header(resp)  # no Content-Length: the codec chooses the framing
    session.write_body(b"hello ")
    session.write_body(b"world")
    session.finish(HeaderMap.from_pairs([(b"X-Trailer", b"t1")]))


def test_response_without_length_is_chunked_for_http11_with_trailers():
    written, closed, _ = run(exchange([GET % b"x"], handler=Recorder(_stream_reply)))
    assert b"\r\nTransfer-Encoding: chunked\r\n" in written
    (reply,) = read_responses(written, [b"GET"])
    assert reply.body == b"hello world"
    assert reply.trailers == {"x-trailer": "t1"}
    assert not closed


def test_response_without_length_to_http10_is_close_delimited():
    data = b"GET /x HTTP/1.0\r\nHost: t\r\n\r\n"
    written, closed, _ = run(exchange([data], handler=Recorder(_stream_reply)))
    head, _, body = written.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower() and b"content-length" not in head.lower()
    assert b"\r\nConnection: close" in head
    assert body == b"hello world"
    assert closed


def test_http10_keep_alive_only_when_asked():
    async def sized(session, body):
        answer(session, 200, b"ok", 2)

    asked = b"GET / HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"
    written, closed, _ = run(exchange([asked], handler=Recorder(sized)))
    assert b"\r\nConnection: keep-alive\r\n" in written and not closed
    written, closed, _ = run(exchange([b"GET / HTTP/1.0\r\nHost: t\r\n\r\n"], handler=Recorder(sized)))
    assert closed


@pytest.mark.parametrize("method, status", [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)])
def test_responses_that_have_no_body(method, status):
    async def reply(session, body):
        answer(session, status, b"not allowed", 11)  # HEAD: the length of the GET body

    data = method + b" / HTTP/1.1\r\nHost: t\r\n\r\n" + GET % b"next"
    written, closed, h = run(exchange([data], handler=Recorder(reply)))
    first, second = read_responses(written, [method, b"GET"])
    assert (first.status, first.body) == (status, b"")
    assert second.status == status  # the next response starts right after the head
    assert len(h.seen) == 2 and not closed


def test_response_shorter_than_its_content_length_ends_the_connection():
    async def short(session, body):
        answer(session, 200, b"short", 10)

    written, closed, h = run(exchange([GET % b"a" + GET % b"b"], handler=Recorder(short)))
    assert written.endswith(b"short")
    assert closed and len(h.seen) == 1


def test_answer_before_the_body_was_read_closes_the_connection():
    class Early(Recorder):
        async def __call__(self, session) -> bool:
            resp = ResponseHeader.build(413)
            resp.insert_header(b"Content-Length", b"0")
            session.write_header(resp, end_of_stream=True)
            return session.keepalive

    data = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
    written, closed, _ = run(exchange([data], handler=Early()))
    (reply,) = read_responses(written, [b"POST"])
    assert reply.status == 413 and reply.headers.get("connection") == "close"
    assert closed
