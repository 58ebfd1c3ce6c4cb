"""The upstream HTTP/2 codec fed bytes: a response with Content-Length is complete
once that many bytes arrived, END_STREAM or not (Pingora's rule)."""

from __future__ import annotations

import asyncio
from typing import Optional

import h2.config
import h2.connection
import h2.events
import pytest

from h2_codec_support import BytesTransport, frames, step
from propylon.protocols.http.header import RequestHeader
from propylon.protocols.http.v2.client import H2ClientConnection, H2ClientStream

RST_STREAM = 3


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


class Origin:
    """An ``h2`` server connection wired by hand to an ``H2ClientConnection``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.client = H2ClientConnection()
        self.t = BytesTransport()
        self.client.connection_made(self.t)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.h2.initiate_connection()
        self.events: list = []
        self.pump()

    def pump(self) -> None:
        """Deliver what each side wrote to the other."""
        for _ in range(4):
            step(self.loop)  # the client writes at the end of a loop turn
            out = self.t.take()
            if out:
                self.events += self.h2.receive_data(out)
            back = self.h2.data_to_send()
            if back:
                self.client.data_received(back)

    def request(self, method: str = "GET") -> H2ClientStream:
        st = self.client.open_stream()
        req = RequestHeader.build(method, "/")
        req.append_header("Host", "origin.test")
        st.send_request_header(req, False, False)
        self.pump()
        return st

    def answer(self, sid: int, length: Optional[int], body: bytes, end: bool) -> None:
        head = [(":status", "200")] + ([("content-length", str(length))] if length is not None else [])
        self.h2.send_headers(sid, head, end_stream=end and not body)
        if body:
            self.h2.send_data(sid, body, end_stream=end)
        self.pump()


def test_body_complete_by_content_length_without_end_stream(loop):
    o = Origin(loop)
    st = o.request()
    o.answer(st.stream_id, 5, b"hello", end=False)
    assert loop.run_until_complete(st.read_response_header()).status == 200
    assert st.take_body() == b"hello"
    assert st.at_end() and st.body_ready() and st.take_body() is None
    # Released, the stream the origin never ended is cancelled; the connection stays.
    st.close()
    step(loop)
    resets = [sid for ftype, _, sid, _ in frames(o.t.take()) if ftype == RST_STREAM]
    assert resets == [st.stream_id] and o.client.is_usable()
    assert o.client.active_streams == 0


def test_zero_length_body_is_complete_with_the_head(loop):
    o = Origin(loop)
    st = o.request()
    o.answer(st.stream_id, 0, b"", end=False)
    loop.run_until_complete(st.read_response_header())
    assert st.take_body() is None


def test_without_content_length_the_body_waits_for_end_stream(loop):
    o = Origin(loop)
    st = o.request()
    o.answer(st.stream_id, None, b"hello", end=False)
    loop.run_until_complete(st.read_response_header())
    assert st.take_body() == b"hello"
    assert st.take_body() == b"" and not st.at_end()  # more may come
    o.h2.end_stream(st.stream_id)
    o.pump()
    assert st.take_body() is None


def test_a_head_response_length_describes_no_body(loop):
    o = Origin(loop)
    st = o.request("HEAD")
    o.h2.send_headers(st.stream_id, [(":status", "200"), ("content-length", "5")])
    o.pump()
    loop.run_until_complete(st.read_response_header())
    assert not st.at_end()  # the length is the GET body's: the end is END_STREAM
    o.h2.end_stream(st.stream_id)
    o.pump()
    assert st.take_body() is None
