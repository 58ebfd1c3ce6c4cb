"""The HTTP/2 codec in use (native or h2, see PROPYLON_H2_CODEC), fed the bytes of a
real HTTP/2 client (the ``h2`` library's) and read back by it."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events

from h2_codec_support import frames
from propylon.protocols.http.v2.codec import (CODEC, DATA, END, GOAWAY, HEADERS, NO_ERROR, RESET, TRAILERS,
                                              WINDOW, Codec)

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.test"), (b":path", b"/")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.test"), (b":path", b"/up")]


def pair() -> tuple[h2.connection.H2Connection, Codec]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    server = Codec(False, initial_window_size=1 << 20, connection_window_size=4 << 20,
                   max_concurrent_streams=100, max_header_list_size=64 * 1024, header_slack=4)
    client.receive_data(server.data_to_send())
    return client, server


def feed(server: Codec, data: bytes) -> list:
    """Everything ``server`` reports for ``data``, following its pauses."""
    events = []
    while data is not None:
        events += server.receive(data)
        data = server.unconsumed
    return events


def of(events: list, kind: int) -> list:
    return [e for e in events if e[0] == kind]


def test_a_request_head_arrives_as_one_list_in_order_with_its_end():
    client, server = pair()
    fields = GET + [(b"x-field-%02d" % i, b"value %d" % i) for i in range(40)]
    client.send_headers(1, fields, end_stream=True)
    events = feed(server, client.data_to_send())
    heads = of(events, HEADERS)
    assert heads == [(HEADERS, 1, fields, True)]
    assert of(events, END) == [(END, 1, None, None)]


def test_body_trailers_and_the_window_given_back_only_when_acknowledged():
    client, server = pair()
    body = bytes(range(256)) * 2400  # 600 KiB: past half the 1 MiB stream window
    client.send_headers(1, POST, end_stream=False)
    for i in range(0, len(body), 16384):
        client.send_data(1, body[i:i + 16384])
    client.send_headers(1, [(b"grpc-status", b"0")], end_stream=True)
    events = feed(server, client.data_to_send())
    kinds = [e[0] for e in events if e[0] in (HEADERS, DATA, TRAILERS, END)]
    assert kinds[0] == HEADERS and kinds[-2:] == [TRAILERS, END] and set(kinds[1:-2]) == {DATA}
    assert b"".join(e[2] for e in of(events, DATA)) == body
    assert of(events, TRAILERS)[0][2] == [(b"grpc-status", b"0")]
    got = client.receive_data(server.data_to_send())
    assert not any(isinstance(e, h2.events.WindowUpdated) and e.stream_id == 1 for e in got)
    server.acknowledge(1, len(body))
    got = client.receive_data(server.data_to_send())
    assert any(isinstance(e, h2.events.WindowUpdated) and e.stream_id in (0, 1) for e in got)


def test_send_window_bounds_what_is_handed_over_until_the_client_reads():
    client, server = pair()
    client.send_headers(1, GET, end_stream=True)
    feed(server, client.data_to_send())
    server.send_headers(1, [(b":status", b"200")], False)
    total = 0
    for _ in range(10):
        room = server.send_window(1)
        if not room:
            break
        server.send_data(1, b"a" * room, False)
        total += room
    assert total == 65535  # the client's default window, and not a byte more
    got = client.receive_data(server.data_to_send())
    received = sum(len(e.data) for e in got if isinstance(e, h2.events.DataReceived))
    assert received == 65535
    client.acknowledge_received_data(received, 1)
    events = feed(server, client.data_to_send())
    assert any(e[0] == WINDOW for e in events) and server.send_window(1) > 0
    server.send_data(1, b"end", True)
    got = client.receive_data(server.data_to_send())
    assert any(isinstance(e, h2.events.StreamEnded) for e in got)


def test_trailers_after_a_body_still_waiting_for_window_go_last():
    client, server = pair()
    client.send_headers(1, GET, end_stream=True)
    feed(server, client.data_to_send())
    server.send_headers(1, [(b":status", b"200")], False)
    server.send_data(1, b"b" * 100, False)
    server.send_headers(1, [(b"x-trailer", b"1")], True)
    got = client.receive_data(server.data_to_send())
    kinds = [type(e).__name__ for e in got if not isinstance(e, h2.events.SettingsAcknowledged)]
    assert kinds == ["ResponseReceived", "DataReceived", "TrailersReceived", "StreamEnded"]


def test_graceful_goaway_lets_the_open_stream_finish():
    client, server = pair()
    client.send_headers(1, GET, end_stream=True)
    feed(server, client.data_to_send())
    server.goaway(NO_ERROR, server.last_stream_id())
    server.send_headers(1, [(b":status", b"204")], True)
    sent = list(frames(server.data_to_send()))
    goaways = [payload for ftype, _, _, payload in sent if ftype == 7]
    assert goaways and goaways[0][:8] == (1).to_bytes(4, "big") + NO_ERROR.to_bytes(4, "big")
    # The answer on stream 1 still leaves, with END_STREAM (flag 0x1).
    assert any(ftype == 1 and sid == 1 and flags & 0x1 for ftype, flags, sid, _ in sent)


def test_a_read_full_of_cancelled_streams_reports_every_one():
    client, server = pair()
    for i in range(500):
        sid = 1 + 2 * i
        client.send_headers(sid, GET, end_stream=True)
        client.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    parts = 0
    data = client.data_to_send()
    events = []
    while data is not None:
        parts += 1
        events += server.receive(data)
        data = server.unconsumed
    assert len(of(events, RESET)) == 500 and len(of(events, HEADERS)) == 500
    assert not of(events, GOAWAY)
    if CODEC == "native":
        # Handed over in parts, so the connection's guard counts as they come.
        assert parts > 1
