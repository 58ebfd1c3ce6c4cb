"""The upstream HTTP/1 codec fed raw response bytes, no sockets.

Requests it writes are read back with ``h11`` (an independent implementation);
responses are fed as the bytes an origin would send.
"""

from __future__ import annotations

import asyncio

import h11
import pytest

from propylon.errors import Error, ErrorType, RetryType
from propylon.protocols.http.header import HeaderMap, RequestHeader

from protocols_support import connect, h1_client, read_all, settle


def parse_request(data: bytes) -> tuple[h11.Request, bytes, list]:
    """The request in ``data`` as h11 reads it: head, body and trailers."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    head, body, trailers = None, b"", []
    while True:
        ev = server.next_event()
        if isinstance(ev, h11.Request):
            head = ev
        elif isinstance(ev, h11.Data):
            body += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            trailers = list(ev.headers)
            return head, body, trailers
        elif ev is h11.NEED_DATA:
            raise AssertionError(f"incomplete request: {data!r}")


def request(method: bytes = b"GET", path: bytes = b"/", **headers: str) -> RequestHeader:
    req = RequestHeader.build(method, path)
    req.append_header(b"Host", b"origin.test")
    for name, value in headers.items():
        req.append_header(name.replace("_", "-"), value)
    return req


def run(coro):
    return asyncio.run(coro)


# --- the request ------------------------------------------------------------------------
def test_request_with_unknown_length_goes_chunked_with_trailers():
    async def main():
        conn = h1_client()
        transport = connect(conn)
        conn.send_request_header(request(b"POST", b"/up", content_length="999"), True, False)
        conn.write_body(b"hello ")
        conn.write_body(b"")  # an empty write sends no empty chunk (which would end the body)
        conn.write_body(b"world")
        conn.finish_body(HeaderMap.from_pairs([(b"X-Sum", b"7")]))
        return transport.take()

    head, body, trailers = parse_request(run(main()))
    fields = {k.lower(): v for k, v in head.headers}
    assert (head.method, head.target, head.http_version) == (b"POST", b"/up", b"1.1")
    assert fields[b"transfer-encoding"] == b"chunked" and b"content-length" not in fields
    assert body == b"hello world" and trailers == [(b"x-sum", b"7")]


def test_request_with_known_length_is_sent_as_is():
    async def main():
        conn = h1_client()
        transport = connect(conn)
        conn.send_request_header(request(b"PUT", b"/x", content_length="5"), True, True)
        conn.write_body(b"abcde")
        conn.finish_body()
        return transport.take()

    data = run(main())
    assert data.endswith(b"\r\n\r\nabcde")
    head, body, _ = parse_request(data)
    assert body == b"abcde" and dict(head.headers)[b"content-length"] == b"5"


# --- the response ------------------------------------------------------------------------
async def _exchange(response_pieces: list[bytes], method: bytes = b"GET", eof: bool = False):
    conn = h1_client()
    transport = connect(conn)
    conn.send_request_header(request(method), False, True)
    transport.take()

    async def feed():
        for piece in response_pieces:
            conn.data_received(piece)
            await asyncio.sleep(0)
        if eof:
            conn.eof_received()

    feeder = asyncio.ensure_future(feed())
    heads = [await conn.read_response_header()]
    while heads[-1].status < 200:
        heads.append(await conn.read_response_header())
    body = b"" if method == b"HEAD" else await read_all(conn)
    await feeder
    return conn, transport, heads, body


def test_content_length_body_in_pieces_and_the_connection_is_reusable():
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-App: a\r\n\r\nhello world"
    pieces = [data[i:i + 7] for i in range(0, len(data), 7)]
    conn, transport, (head,), body = run(_exchange(pieces))
    assert (head.status, head.headers.get("x-app"), body) == (200, "a", b"hello world")
    assert conn.reusable() and not transport.closed


def test_chunked_body_with_trailers_and_hop_by_hop_fields_set_aside():
    data = (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n"
            b"X-Hop: internal\r\nTransfer-Encoding: chunked\r\nX-End: 1\r\n\r\n"
            b"4\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Checksum: abc\r\n\r\n")
    conn, _, (head,), body = run(_exchange([data]))
    assert body == b"wikipedia"
    assert conn.trailers is not None and conn.trailers.get("x-checksum") == "abc"
    names = {n.lower() for n, _ in head.headers.items()}
    assert names == {"x-end"}  # Connection, Keep-Alive, Transfer-Encoding and what Connection names
    assert conn.reusable()


def test_close_delimited_body_ends_at_eof_and_is_not_reused():
    data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
    conn, _, (head,), body = run(_exchange([data[:30], data[30:]], eof=True))
    assert body == b"until the end"
    assert not conn.reusable()


def test_response_to_head_has_no_body_whatever_its_length_says():
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    conn, _, (head,), _ = run(_exchange([data], method=b"HEAD"))
    assert head.headers.get("content-length") == "1000"
    assert conn.take_body() is None and conn.reusable()


def test_interim_heads_come_one_by_one_before_the_final_one():
    data = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 204 No Content\r\n\r\n")
    conn, _, heads, body = run(_exchange([data]))
    assert [h.status for h in heads] == [100, 103, 204]
    assert heads[1].headers.get("link") == "</a.css>; rel=preload"
    assert body == b"" and conn.reusable()


def test_connection_close_from_the_origin_prevents_reuse():
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    conn, _, _, body = run(_exchange([data]))
    assert body == b"ok" and not conn.reusable()


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
])
def test_malformed_responses_fail_as_upstream_errors_and_close(data):
    async def main():
        conn = h1_client()
        transport = connect(conn)
        conn.send_request_header(request(), False, True)
        conn.data_received(data)
        with pytest.raises(Error) as e:
            await conn.read_response_header()
            await read_all(conn)
        await settle()
        return e.value, transport.closed, conn.reusable()

    err, closed, reusable = run(main())
    assert err.etype == ErrorType.INVALID_HTTP_HEADER and err.esource.name.lower() == "upstream"
    assert closed and not reusable


def test_eof_before_any_byte_is_retryable_only_on_a_reused_connection():
    async def main():
        conn = h1_client()
        connect(conn)
        conn.send_request_header(request(), False, True)
        conn.eof_received()
        with pytest.raises(Error) as e:
            await conn.read_response_header()
        return e.value

    err = run(main())
    assert err.etype == ErrorType.CONNECTION_CLOSED
    assert err.retry_type is RetryType.REUSED_ONLY


def test_eof_mid_body_is_an_error_not_a_short_body():
    async def main():
        with pytest.raises(Error) as e:
            await _exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], eof=True)
        return e.value

    assert run(main()).etype == ErrorType.CONNECTION_CLOSED


def test_an_idle_connection_that_hears_from_the_origin_becomes_unusable():
    async def main():
        conn, transport, _, _ = await _exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
        told = []
        conn.idle = True  # as the pool marks it
        conn.on_idle_event = told.append
        conn.data_received(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        return conn, transport, told

    conn, transport, told = run(main())
    assert told == [conn]
    assert not conn.reusable() and transport.closed
