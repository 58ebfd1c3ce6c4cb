"""The upstream HTTP/2 codec against an origin played by the ``h2`` library, no sockets."""

from __future__ import annotations

import asyncio

import h2.errors
import h2.events as ev
import pytest

from propylon.errors import Error, ErrorType
from propylon.protocols.http.header import HeaderMap, RequestHeader

from protocols_support import H2Peer, connect, h2_client, read_all, settle


class Origin:
    """Our client codec and an ``h2`` server talking through a memory transport."""

    def __init__(self, max_streams: int = 100, **peer_settings: int) -> None:
        self.conn = h2_client(max_streams)
        self.transport = connect(self.conn)
        self.peer = H2Peer(client_side=False, **peer_settings)

    async def exchange(self) -> list:
        """Let our codec flush, the origin hear it, and the origin's answer come back."""
        await settle()
        events = self.peer.hear(self.transport)
        data = self.peer.out()
        if data:
            self.conn.data_received(data)
        await settle()
        return events

    def request(self, sid: int) -> dict:
        (req,) = self.peer.of(ev.RequestReceived, sid)
        return req.headers

    def respond(self, sid: int, status: int, body: bytes = b"", trailers=None, **fields: str) -> None:
        head = [(b":status", str(status).encode())] + [
            (k.replace("_", "-").encode(), v.encode()) for k, v in fields.items()]
        self.peer.h2.send_headers(sid, head, end_stream=not body and not trailers)
        if body:
            self.peer.h2.send_data(sid, body, end_stream=not trailers)
        if trailers:
            self.peer.h2.send_headers(sid, trailers, end_stream=True)


def get(path: bytes = b"/", **fields: str) -> RequestHeader:
    req = RequestHeader.build(b"GET", path)
    req.append_header(b"Host", b"origin.test")
    for k, v in fields.items():
        req.append_header(k.replace("_", "-"), v)
    return req


async def requests(*paths: bytes):
    """An origin that has received a GET for each path, each on its own stream of
    one connection; the origin and the streams."""
    o = Origin()
    await o.exchange()
    streams = [o.conn.open_stream() for _ in paths]
    for st, path in zip(streams, paths):
        st.send_request_header(get(path), False, True)
    await o.exchange()
    return (o, *streams)


def run(coro):
    return asyncio.run(coro)


def test_request_head_is_mapped_to_pseudo_headers_without_connection_fields():
    async def main():
        o = Origin()
        await o.exchange()
        st = o.conn.open_stream()
        st.send_request_header(get(b"/p?q=1", connection="keep-alive", keep_alive="5",
                                   te="trailers", x_app="1"), False, True)
        await o.exchange()
        return o.request(st.stream_id)

    fields = run(main())
    assert fields[:4] == [(b":method", b"GET"), (b":scheme", b"http"),
                          (b":authority", b"origin.test"), (b":path", b"/p?q=1")]
    names = [n for n, _ in fields[4:]]
    assert b"host" not in names and b"connection" not in names and b"keep-alive" not in names
    assert (b"te", b"trailers") in fields and (b"x-app", b"1") in fields


def test_response_with_body_and_trailers():
    async def main():
        o, st = await requests(b"/")
        o.respond(st.stream_id, 200, b"hello", trailers=[(b"grpc-status", b"0")], content_type="text/plain")
        await o.exchange()
        resp = await st.read_response_header()
        body = await read_all(st)
        return resp, body, st.trailers

    resp, body, trailers = run(main())
    assert resp.status == 200 and resp.headers.get("content-type") == "text/plain"
    assert body == b"hello" and trailers == HeaderMap.from_pairs([(b"grpc-status", b"0")])


def test_request_body_and_trailers_reach_the_origin():
    async def main():
        o = Origin()
        await o.exchange()
        st = o.conn.open_stream()
        req = RequestHeader.build(b"POST", b"/up")
        req.append_header(b"Host", b"origin.test")
        st.send_request_header(req, True, False)
        st.write_body(b"part one, ")
        st.write_body(b"part two")
        st.finish_body(HeaderMap.from_pairs([(b"x-sum", b"9")]))
        await o.exchange()
        return o, st.stream_id

    o, sid = run(main())
    assert b"".join(e.data for e in o.peer.of(ev.DataReceived, sid)) == b"part one, part two"
    (trailers,) = o.peer.of(ev.TrailersReceived, sid)
    assert trailers.headers == [(b"x-sum", b"9")]


def test_a_reset_from_the_origin_fails_that_stream_only():
    async def main():
        o, a, b = await requests(b"/a", b"/b")
        o.peer.h2.reset_stream(a.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        o.respond(b.stream_id, 200, b"fine")
        await o.exchange()
        with pytest.raises(Error) as e:
            await a.read_response_header()
        resp = await b.read_response_header()
        return e.value, resp.status, await read_all(b), o.conn.is_usable()

    err, status, body, usable = run(main())
    assert err.esource.name.lower() == "upstream"
    assert (status, body, usable) == (200, b"fine", True)


def test_goaway_fails_streams_above_the_last_id_as_retryable():
    async def main():
        o, a, b = await requests(b"/a", b"/b")
        o.respond(a.stream_id, 200, b"kept")  # h2 sends nothing after its own GOAWAY
        o.peer.h2.close_connection(last_stream_id=a.stream_id)
        await o.exchange()
        with pytest.raises(Error) as e:
            await b.read_response_header()
        resp = await a.read_response_header()
        return e.value, resp.status, await read_all(a), o.conn.is_usable()

    err, status, body, usable = run(main())
    assert err.retry_type.name == "YES"  # the origin never saw it: safe on another connection
    assert (status, body) == (200, b"kept")
    assert not usable  # no new stream after GOAWAY


def test_available_streams_follow_the_origins_limit():
    async def main():
        o = Origin(max_streams=10, max_concurrent_streams=2)
        before = o.conn.available_streams()
        await o.exchange()
        after = o.conn.available_streams()
        o.conn.open_stream()
        o.conn.open_stream()
        with pytest.raises(Error) as e:
            o.conn.open_stream()
        return before, after, o.conn.available_streams(), e.value

    before, after, full, err = run(main())
    assert (before, after, full) == (10, 2, 0)
    assert err.etype == ErrorType.H2_ERROR


def test_broken_frames_from_the_origin_fail_every_stream():
    async def main():
        o, st = await requests(b"/")
        o.conn.data_received(b"\x00\x00\x04\x09\x00\x00\x00\x00\x01garbage!")  # CONTINUATION out of place
        await settle()
        with pytest.raises(Error) as e:
            await st.read_response_header()
        return e.value, o.conn.closed

    err, closed = run(main())
    assert err.esource.name.lower() == "upstream" and closed
