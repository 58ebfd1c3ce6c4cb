"""The downstream HTTP/2 codec fed frames that the ``h2`` library builds as a client, no sockets."""

from __future__ import annotations

import asyncio

import h2.errors
import h2.events as ev

from propylon.protocols.http.header import HeaderMap, ResponseHeader
from propylon.protocols.http.v2.server import H2Options

from protocols_support import H2Peer, answer, connect, h2_server, read_all, settle


def head(method: bytes, path: bytes = b"/", **extra: str) -> list:
    fields = [(b":method", method), (b":scheme", b"https"), (b":authority", b"api.test"),
              (b":path", path)]
    return fields + [(k.replace("_", "-").encode(), v.encode()) for k, v in extra.items()]


class Recorder:
    """Reads each request whole, then answers with ``reply(stream, body)``
    (default: 200 and ``<method> <path> <body>``)."""

    def __init__(self, reply=None) -> None:
        self.seen: list = []  # (stream, body)
        self.reply = reply

    async def __call__(self, st) -> bool:
        body = await read_all(st)
        self.seen.append((st, body))
        if self.reply is not None:
            await self.reply(st, body)
        else:
            text = f"{st.req.method} {st.req.path} ".encode() + body
            answer(st, 200, text, len(text))
        await st.drain()
        return True


class Session:
    """Our server codec and an ``h2`` client talking through a memory transport."""

    def __init__(self, handler, options: H2Options | None = None, **peer_settings: int) -> None:
        self.conn = h2_server(handler, options)
        self.transport = connect(self.conn)
        self.peer = H2Peer(client_side=True, **peer_settings)

    async def send(self) -> list:
        """Deliver the client's queued frames, let the codec work, hear its answer."""
        data = self.peer.out()
        if data:
            self.conn.data_received(data)
        await settle()
        return self.peer.hear(self.transport)

    def body(self, sid: int) -> bytes:
        return b"".join(e.data for e in self.peer.of(ev.DataReceived, sid))

    def status(self, sid: int) -> int:
        (resp,) = self.peer.of(ev.ResponseReceived, sid)
        return int(dict(resp.headers)[b":status"])

    async def close(self) -> None:
        self.transport.close()
        await settle()


def run(coro):
    return asyncio.run(coro)


def test_get_is_answered_with_headers_data_and_end_stream():
    h = Recorder()

    async def main():
        s = Session(h)
        await s.send()  # settings both ways
        s.peer.h2.send_headers(1, head(b"GET", b"/a?x=1", user_agent="h2-peer"), end_stream=True)
        await s.send()
        ended = s.peer.of(ev.StreamEnded, 1)
        resp = dict(s.peer.of(ev.ResponseReceived, 1)[0].headers)
        await s.close()
        return s, ended, resp

    s, ended, resp = run(main())
    (st, body), = h.seen
    assert (st.req.method, st.req.path, st.req.headers.get("host")) == ("GET", "/a", "api.test")
    assert st.req.headers.get("user-agent") == "h2-peer"
    assert resp[b":status"] == b"200" and resp[b"content-length"] == b"7"
    assert s.body(1) == b"GET /a " and len(ended) == 1


def test_request_body_in_frames_with_trailers():
    h = Recorder()

    async def main():
        s = Session(h)
        await s.send()
        s.peer.h2.send_headers(1, head(b"POST", b"/up"))
        s.peer.h2.send_data(1, b"hello ")
        await s.send()
        s.peer.h2.send_data(1, b"world")
        s.peer.h2.send_headers(1, [(b"x-sum", b"42")], end_stream=True)
        await s.send()
        await s.close()
        return s

    s = run(main())
    (st, body), = h.seen
    assert body == b"hello world"
    assert st.trailers is not None and st.trailers.get("x-sum") == "42"
    assert s.body(1) == b"POST /up hello world"


def test_interleaved_streams_are_each_answered():
    h = Recorder()

    async def main():
        s = Session(h)
        await s.send()
        s.peer.h2.send_headers(1, head(b"POST", b"/one"))
        s.peer.h2.send_headers(3, head(b"GET", b"/two"), end_stream=True)
        s.peer.h2.send_data(1, b"late", end_stream=True)
        await s.send()
        await s.close()
        return s

    s = run(main())
    assert (s.body(1), s.body(3)) == (b"POST /one late", b"GET /two ")
    assert sorted(st.req.path for st, _ in h.seen) == ["/one", "/two"]


def test_head_and_204_send_no_data_frames():
    async def reply(st, body):
        resp = ResponseHeader.build(204 if st.req.path == "/empty" else 200)
        if st.is_head:
            resp.insert_header(b"Content-Length", b"5")  # the length a GET would get
        st.write_header(resp)
        st.write_body(b"never")
        st.finish()

    async def main():
        s = Session(Recorder(reply))
        await s.send()
        s.peer.h2.send_headers(1, head(b"HEAD", b"/"), end_stream=True)
        s.peer.h2.send_headers(3, head(b"GET", b"/empty"), end_stream=True)
        await s.send()
        await s.close()
        return s

    s = run(main())
    assert (s.status(1), s.status(3)) == (200, 204)
    assert s.body(1) == b"" and s.body(3) == b""
    assert len(s.peer.of(ev.StreamEnded)) == 2


def test_response_trailers_end_the_stream():
    async def reply(st, body):
        st.write_header(ResponseHeader.build(200))
        st.write_body(b"data")
        st.finish(HeaderMap.from_pairs([(b"grpc-status", b"0")]))

    async def main():
        s = Session(Recorder(reply))
        await s.send()
        s.peer.h2.send_headers(1, head(b"POST", b"/rpc", te="trailers"), end_stream=True)
        await s.send()
        await s.close()
        return s

    s = run(main())
    (trailers,) = s.peer.of(ev.TrailersReceived, 1)
    assert trailers.headers == [(b"grpc-status", b"0")] and trailers.stream_ended is not None
    assert s.body(1) == b"data"


def test_response_body_waits_for_the_clients_window():
    big = b"z" * 100

    async def reply(st, body):
        answer(st, 200, big, 100)
        await st.drain()

    async def main():
        s = Session(Recorder(reply), initial_window_size=30)
        await s.send()
        s.peer.h2.send_headers(1, head(b"GET"), end_stream=True)
        await s.send()
        first = len(s.body(1))
        s.peer.h2.increment_flow_control_window(100, stream_id=1)
        await s.send()
        await s.close()
        return first, s

    first, s = run(main())
    assert first == 30  # only what the stream's window allowed
    assert s.body(1) == big and s.peer.of(ev.StreamEnded, 1)


def test_connect_and_oversized_heads_are_answered_without_the_handler():
    h = Recorder()

    async def main():
        s = Session(h, H2Options(max_header_list_size=200))
        await s.send()
        s.peer.h2.send_headers(1, [(b":method", b"CONNECT"), (b":authority", b"x.test:443")], end_stream=True)
        s.peer.h2.send_headers(3, head(b"GET", b"/", x_big="b" * 400), end_stream=True)
        await s.send()
        await s.close()
        return s

    s = run(main())
    assert (s.status(1), s.status(3)) == (405, 431)
    assert h.seen == []


def test_connection_specific_header_is_a_protocol_error():
    h = Recorder()

    async def main():
        s = Session(h)
        s.peer = H2Peer(client_side=True, validate=False)
        await s.send()
        s.peer.h2.send_headers(1, head(b"GET", b"/", connection="keep-alive"), end_stream=True)
        await s.send()
        return s

    s = run(main())
    assert h.seen == []
    resets = s.peer.of(ev.StreamReset, 1)
    goaway = s.peer.of(ev.ConnectionTerminated)
    # Refused either for the stream or for the whole connection, never served.
    assert (resets and resets[0].error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR) or \
        (goaway and goaway[0].error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR)


def test_client_reset_fails_the_body_read_and_calls_on_lost():
    lost, errors = [], []

    class Watching(Recorder):
        async def __call__(self, st) -> bool:
            st.on_lost = lambda: lost.append(st.stream_id)
            try:
                while await st.read_body() is not None:
                    pass
            except Exception as e:
                errors.append(e)
            return True

    async def main():
        s = Session(Watching())
        await s.send()
        s.peer.h2.send_headers(1, head(b"POST", b"/up"))
        s.peer.h2.send_data(1, b"part")
        await s.send()
        s.peer.h2.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
        await s.send()
        await s.close()

    run(main())
    assert lost == [1]
    (err,) = errors
    assert err.esource.name.lower() == "downstream"
