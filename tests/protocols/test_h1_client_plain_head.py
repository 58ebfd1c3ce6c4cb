"""The upstream codec's one-pass reading of a plain response (``plain_head``, the
compiled build) against llhttp's reading of the same bytes: a response that comes
whole in one read is taken by the one-pass reader when it is plain, and the same
response cut so that its first read holds one byte always goes to llhttp. Both
must hand over the same heads, body, trailers and reuse decision, or fail alike."""

from __future__ import annotations

import asyncio
import random

import pytest

from propylon.errors import Error
from propylon.protocols.http.header import RequestHeader

from protocols_support import connect, h1_client, read_all

pytest.importorskip("propylon.protocols.http.v1.plain_head", reason="the compiled build's module")

_NAMES = [b"Server", b"Date", b"Content-Type", b"X-App", b"ETag", b"Cache-Control", b"Set-Cookie",
          b"Keep-Alive", b"Proxy-Connection", b"Trailer", b"Vary", b"close", b"keep-alive", b"X-Hop"]
_VALUES = [b"nginx", b"text/plain; charset=utf-8", b"\"abc\"", b"max-age=60", b"a=b; Path=/",
           b"timeout=5", b"x\tin tab", b"caf\xe9", b"", b" lead", b"trail ", b"tab\t", b"a" * 300]
_CONNECTION = [b"keep-alive", b"Keep-Alive", b"close", b"CLOSE", b"close, X-Hop", b"upgrade", b"keep-alive "]
_LENGTH = [b"5", b"005", b" 5", b"5 ", b"+5", b"-1", b"5, 5", b"99999999999999999999", b"0x5"]


def _response(rng: random.Random) -> tuple[bytes, int, bool]:
    """Random response bytes (mostly plain, some not), where its body starts and
    whether bytes follow its body."""
    status = rng.choice([b"200 OK", b"200 ", b"201 Created", b"404 Not Found", b"502 Bad Gateway",
                         b"204 No Content", b"304 Not Modified", b"200 caf\xe9", b"200 t\tab", b"599 X"])
    version = rng.choice([b"HTTP/1.1 "] * 12 + [b"HTTP/1.0 ", b"HTTP/1.1  "])
    lines = [version + status]
    body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 5, 5, 5, 40])))
    fields = []
    for _ in range(rng.randrange(6)):
        fields.append(rng.choice(_NAMES) + b": " + rng.choice(_VALUES))
    if rng.random() < 0.4:
        fields.append(b"Connection: " + rng.choice(_CONNECTION))
    roll = rng.random()
    if roll < 0.75:
        length = str(len(body)).encode() if rng.random() < 0.85 else rng.choice(_LENGTH)
        fields.insert(rng.randrange(len(fields) + 1), b"Content-Length: " + length)
        if rng.random() < 0.05:
            fields.append(b"Content-Length: " + length)
    elif roll < 0.85:
        fields.append(b"Transfer-Encoding: chunked")
        body = b"5\r\nhello\r\n0\r\n\r\n"
    if rng.random() < 0.05:
        fields.append(rng.choice([b"Bad Name: x", b"X-Fold: a\r\n b", b"NoColon", b"X-Bare: a\rb"]))
    head = b"\r\n".join(lines + fields) + b"\r\n\r\n"
    extra = rng.random() < 0.05
    if extra:
        body += b"HTTP/1.1 200 OK\r\n"  # bytes past the body
    return head + body, len(head), extra


async def _read(pieces: list[bytes], close: bool):
    """Feed ``pieces`` to a new upstream connection as its response; what it gave
    ("incomplete" if it still waits for more)."""
    conn = h1_client()
    connect(conn)
    req = RequestHeader.build(b"GET", b"/")
    req.append_header(b"Host", b"origin.test")
    conn.send_request_header(req, False, True)
    for piece in pieces:
        conn.data_received(piece)
    if close:
        conn.eof_received()

    async def collect():
        heads = [await conn.read_response_header()]
        while heads[-1].status < 200:
            heads.append(await conn.read_response_header())
        return heads, await read_all(conn)

    try:
        heads, body = await asyncio.wait_for(collect(), 0.05)
    except Error as e:
        return ("error", e.etype)
    except asyncio.TimeoutError:
        return ("incomplete",)
    trailers = conn.trailers.items() if conn.trailers is not None else None
    return ([(h.status, h.version, h.headers.items()) for h in heads], body, trailers, conn.reusable())


@pytest.mark.parametrize("seed", range(4))
def test_the_one_pass_reader_hands_over_what_llhttp_does(seed):
    rng = random.Random(seed)
    taken = 0

    async def main():
        nonlocal taken
        for _ in range(400):
            data, head_len, extra = _response(rng)
            close = b"Content-Length" not in data and b"chunked" not in data
            whole = await _read([data], close)
            parsed = await _read([data[:1], data[1:]], close)
            assert whole == parsed, data
            if whole[0] != "error" and data.find(b"Content-Length") > 0:
                taken += 1
            # A body that arrives over several reads after a whole head. (Bytes past
            # it are no response of ours: the one-pass reader then never reuses the
            # connection, where llhttp would take them for the next response's start.)
            if len(data) > head_len + 1:
                cut = rng.randrange(head_len, len(data))
                got = await _read([data[:cut], data[cut:]], close)
                if extra and got[0] not in ("error", "incomplete") and got[3] != parsed[3]:
                    assert got[:3] == parsed[:3] and got[3] is False, data
                else:
                    assert got == parsed, data

    asyncio.run(main())
    assert taken > 100


def test_a_plain_response_leaves_the_connection_reusable_and_the_next_one_is_read_too():
    async def main():
        conn = h1_client()
        connect(conn)
        out = []
        for response in (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\none",
                         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n",
                         b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nthree"):
            req = RequestHeader.build(b"GET", b"/")
            conn.send_request_header(req, False, True)
            conn.data_received(response)
            head = await conn.read_response_header()
            out.append((head.status, await read_all(conn), conn.reusable()))
            names = [n.lower() for n, _ in head.headers.items()]
            assert "connection" not in names and "transfer-encoding" not in names
        return out

    assert asyncio.run(main()) == [(200, b"one", True), (200, b"two", True), (201, b"three", True)]


def test_bytes_after_a_body_read_in_pieces_end_the_connections_reuse():
    async def main():
        conn = h1_client()
        connect(conn)
        conn.send_request_header(RequestHeader.build(b"GET", b"/"), False, True)
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc")
        head = await conn.read_response_header()
        conn.data_received(b"defHTTP/1.1 200 OK\r\n")
        return head.status, await read_all(conn), conn.reusable()

    assert asyncio.run(main()) == (200, b"abcdef", False)
