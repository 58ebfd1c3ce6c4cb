"""The downstream HTTP/2 codec's defences, fed bytes: ``FrameGuard`` on its own,
then ``H2ServerConnection`` over a transport that only collects what it writes."""

from __future__ import annotations

import asyncio
import random

import h2.config
import h2.connection
import h2.errors
import pytest
from hpack import Decoder, Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, HeadersFrame, PingFrame, PriorityFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from h2_codec_support import PREFACE, BytesTransport, frames, goaway_code, step
from propylon.protocols.http.v2.guard import STALLED_REPLIES, FrameGuard
from propylon.protocols.http.v2.server import H2Options, H2ServerConnection

CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t.test"), (b":path", b"/")]
PING = 6


def guard(**overrides) -> FrameGuard:
    return FrameGuard(H2Options(**overrides))


def mixed_stream() -> bytes:
    """A client's bytes with frames of every kind the guard counts."""
    enc = Encoder()
    parts = [PREFACE, SettingsFrame(0).serialize(), WindowUpdateFrame(0, window_increment=100).serialize()]
    block = enc.encode(GET)
    parts.append(HeadersFrame(1, block[:3]).serialize())
    parts.append(ContinuationFrame(1, block[3:], flags=["END_HEADERS"]).serialize())
    parts.append(DataFrame(1, b"x" * 5000).serialize())
    parts.append(DataFrame(1, b"").serialize())
    parts.append(DataFrame(1, b"", flags=["END_STREAM"]).serialize())  # ends the body: not counted
    parts += [PingFrame(0, opaque_data=b"p%07d" % i).serialize() for i in range(7)]
    parts.append(PriorityFrame(3, depends_on=0, stream_weight=8).serialize())
    parts.append(RstStreamFrame(1, error_code=8).serialize())
    return b"".join(parts)


EXPECTED = {"PING": 7, "SETTINGS": 1, "WINDOW_UPDATE": 1, "PRIORITY": 1, "RST_STREAM": 1,
            "empty": 1, "HEADERS": 1}


@pytest.mark.parametrize("field, value", [("max_ping_frames", 0), ("flood_window", -1.0),
                                          ("max_frames_per_turn", 2.5), ("max_write_buffer", True),
                                          ("pings_per_data_frame", -1)])
def test_options_are_checked_once_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"H2Options.{field} must be"):
        H2Options(**{field: value})


def test_guard_counts_each_kind_of_frame():
    g = guard()
    data = mixed_stream()
    assert g.scan(data, 0.0, 0) == len(data)
    assert g.tripped is None and g.counts() == EXPECTED


@pytest.mark.parametrize("seed", range(20))
def test_guard_counts_the_same_whatever_the_reads(seed):
    # Reads may split the preface, a frame header or a payload anywhere.
    data = mixed_stream()
    rnd = random.Random(seed)
    g = guard()
    pos = 0
    while pos < len(data):
        n = rnd.randint(1, 40)
        assert g.scan(data[pos:pos + n], 0.0, 0) == len(data[pos:pos + n])
        pos += n
    assert g.tripped is None and g.counts() == EXPECTED


def test_guard_hands_back_one_turn_of_frames_at_a_time():
    pings = PingFrame(0, opaque_data=b"12345678").serialize()
    g = guard(max_frames_per_turn=10, max_ping_frames=1000)
    data = PREFACE + pings * 25
    cut = g.scan(data, 0.0, 0)
    assert cut == len(PREFACE) + 10 * len(pings)
    rest = memoryview(data)[cut:]  # the connection keeps the rest as a view of the read
    cut = g.scan(rest, 0.0, 0)
    assert cut == 10 * len(pings)
    assert g.scan(rest[cut:], 0.0, 0) == 5 * len(pings)
    assert g.counts()["PING"] == 25


@pytest.mark.parametrize("kind, frame, limit", [
    ("PING", PingFrame(0, opaque_data=b"12345678"), "max_ping_frames"),
    ("SETTINGS", SettingsFrame(0), "max_settings_frames"),
    ("WINDOW_UPDATE", WindowUpdateFrame(0, window_increment=1), "max_window_update_frames"),
    ("PRIORITY", PriorityFrame(5, depends_on=0, stream_weight=16), "max_priority_frames"),
    ("RST_STREAM", RstStreamFrame(1, error_code=8), "max_rst_stream_frames"),
    ("empty DATA", DataFrame(1, b""), "max_empty_frames"),
])
def test_guard_trips_one_frame_past_each_limit(kind, frame, limit):
    g = guard(**{limit: 20})
    one = frame.serialize()
    assert g.scan(PREFACE + one * 20, 0.0, 0) == len(PREFACE) + 20 * len(one)
    assert g.tripped is None
    g.scan(one, 0.0, 0)
    assert g.tripped == kind


def test_guard_counts_start_again_each_window():
    ping = PingFrame(0, opaque_data=b"12345678").serialize()
    g = guard(max_ping_frames=10, flood_window=1.0)
    g.scan(PREFACE + ping * 10, 100.0, 0)
    g.scan(ping * 10, 101.5, 0)  # a new window
    assert g.tripped is None
    g.scan(ping, 101.9, 0)
    assert g.tripped == "PING"


def test_window_update_allowance_grows_with_the_data_we_send():
    wu = WindowUpdateFrame(1, window_increment=1).serialize()
    g = guard(max_window_update_frames=10, window_updates_per_data_frame=2)
    g.scan(PREFACE, 0.0, 0)
    g.scan(wu * 30, 0.0, 10)  # 10 DATA frames sent: room for 10 + 2 x 10
    assert g.tripped is None
    g.scan(wu, 0.0, 10)
    assert g.tripped == "WINDOW_UPDATE"


def test_ping_allowance_grows_with_the_data_we_send():
    ping = PingFrame(0, opaque_data=b"12345678").serialize()
    g = guard(max_ping_frames=10, pings_per_data_frame=1)
    g.scan(PREFACE + ping * 10, 0.0, 0)
    g.scan(ping * 25, 0.0, 25)  # a PING per DATA frame we sent, as gRPC's bandwidth probe does
    assert g.tripped is None
    g.scan(ping, 0.0, 25)
    assert g.tripped == "PING"


def test_priority_allowance_grows_with_streams_opened():
    enc = Encoder()
    pri = PriorityFrame(101, depends_on=0, stream_weight=16).serialize()
    g = guard(max_priority_frames=5, priority_frames_per_stream=2)
    heads = b"".join(HeadersFrame(2 * i + 1, enc.encode(GET), flags=["END_HEADERS", "END_STREAM"]).serialize()
                     for i in range(3))
    g.scan(PREFACE + heads + pri * 11, 0.0, 0)  # 5 + 2 x 3
    assert g.tripped is None
    g.scan(pri, 0.0, 0)
    assert g.tripped == "PRIORITY"


def test_header_block_is_bounded_across_continuation_frames():
    g = guard(max_header_list_size=1024)  # blocks up to 4 KiB
    g.scan(PREFACE + HeadersFrame(1, b"\x00" * 2000).serialize()
           + ContinuationFrame(1, b"\x00" * 2000).serialize(), 0.0, 0)
    assert g.tripped is None
    g.scan(ContinuationFrame(1, b"\x00" * 200).serialize(), 0.0, 0)
    assert g.tripped == "header block"


# --- the connection --------------------------------------------------------------------
@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    asyncio.set_event_loop(None)
    loop.close()


class Served:
    """Handler that records, for each stream it is given, whether it was already gone."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    async def __call__(self, st) -> bool:
        self.seen.append(st.closed)
        return True


def server(loop, options: H2Options, handler=None) -> tuple[H2ServerConnection, BytesTransport]:
    conn = H2ServerConnection(handler or Served(), None, options)
    t = BytesTransport()
    conn.connection_made(t)
    t.take()
    return conn, t


def pairs(n: int) -> bytes:
    """The preface and ``n`` HEADERS + RST_STREAM pairs, as one client writes them."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    for _ in range(n):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, GET, end_stream=True)
        c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    return c.data_to_send()


def test_ten_thousand_headers_and_resets_in_one_read_trip_the_guard(loop):
    served = Served()
    conn, t = server(loop, H2Options(), served)
    conn.data_received(pairs(10_000))
    step(loop, 3)
    assert goaway_code(t.take()) == CALM and t.aborted
    # The handlers that were started found their stream gone before doing anything.
    assert served.seen and all(served.seen)


def test_refused_streams_count_even_when_reset_frames_are_not_limited(loop):
    # All in one read, the streams are opened and reset before any handler ends:
    # after 100 open ones the rest are refused, and refusals count as resets.
    opts = H2Options(max_rst_stream_frames=10**9, max_frames_per_turn=10**9)
    conn, t = server(loop, opts)
    conn.data_received(pairs(10_000))
    assert goaway_code(t.take()) == CALM and t.aborted


def test_one_read_is_handled_a_turn_at_a_time(loop):
    opts = H2Options(max_ping_frames=10**9, max_frames_per_turn=100)
    conn, t = server(loop, opts)
    ping = PingFrame(0, opaque_data=b"12345678").serialize()
    conn.data_received(PREFACE + SettingsFrame(0).serialize() + ping * 999)
    acks = lambda out: sum(1 for f in frames(out) if f[0] == PING)  # noqa: E731
    assert acks(t.take()) == 99  # the SETTINGS frame was the turn's first
    assert not t.reading  # nothing more is read while a backlog waits
    total = 99
    for _ in range(50):
        step(loop)
        got = acks(t.take())
        assert got <= 100  # one turn per step
        total += got
        if t.reading:
            break
    assert total == 999 and t.reading


def test_a_client_that_does_not_read_is_not_read_either(loop):
    # Frames that owe no reply: the backlog simply waits for the client to read.
    opts = H2Options(max_window_update_frames=10**9, max_frames_per_turn=100)
    conn, t = server(loop, opts)
    update = WindowUpdateFrame(0, window_increment=1).serialize()
    ping = PingFrame(0, opaque_data=b"12345678").serialize()
    conn.data_received(PREFACE + SettingsFrame(0).serialize() + update * 99
                       + (update * 49 + ping) * 8)  # one reply owed in 50 frames
    conn.pause_writing()  # the transport's buffer passed max_write_buffer
    assert not t.reading
    t.take()
    step(loop, 5)
    assert t.take() == b"" and not t.aborted  # the backlog waits too: no more replies are made
    conn.resume_writing()
    step(loop, 20)
    assert sum(1 for f in frames(t.take()) if f[0] == PING) == 8 and t.reading


@pytest.mark.parametrize("frame", [PingFrame(0, opaque_data=b"12345678"), SettingsFrame(0)],
                         ids=["PING", "SETTINGS"])
def test_a_client_that_asks_for_replies_while_not_reading_ours_is_cut_off(loop, frame):
    opts = H2Options(max_ping_frames=10**9, max_settings_frames=10**9, max_frames_per_turn=100)
    conn, t = server(loop, opts)
    one = frame.serialize()
    conn.data_received(PREFACE + SettingsFrame(0).serialize() + one * (99 + STALLED_REPLIES + 1))
    conn.pause_writing()  # our replies to the first turn are not read
    t.take()
    step(loop, 2)
    assert t.aborted and goaway_code(t.take()) == CALM
    assert conn._closed


def test_a_few_replies_owed_while_not_reading_are_not_a_flood(loop):
    opts = H2Options(max_ping_frames=10**9, max_frames_per_turn=100)
    conn, t = server(loop, opts)
    ping = PingFrame(0, opaque_data=b"12345678").serialize()
    conn.data_received(PREFACE + SettingsFrame(0).serialize() + ping * (99 + STALLED_REPLIES))
    conn.pause_writing()
    t.take()
    step(loop, 5)
    assert not t.aborted and t.take() == b""
    conn.resume_writing()
    step(loop, 5)
    assert sum(1 for f in frames(t.take()) if f[0] == PING) == STALLED_REPLIES


def test_owes_replies_counts_pings_and_settings_that_are_not_acknowledgements():
    ping = PingFrame(0, opaque_data=b"12345678").serialize()
    ack = PingFrame(0, opaque_data=b"12345678", flags=["ACK"]).serialize()
    settings_ack = SettingsFrame(0, flags=["ACK"]).serialize()
    data = DataFrame(1, b"x" * 100).serialize()
    few = (ping + data) * STALLED_REPLIES + ack * 50 + settings_ack * 50
    assert not FrameGuard.owes_replies(few)
    assert FrameGuard.owes_replies(memoryview(few + SettingsFrame(0).serialize()))
    assert not FrameGuard.owes_replies(few + ping[:8])  # a frame header not here yet


@pytest.mark.parametrize("buffered", [0, 1 << 20], ids=["reads", "does-not-read"])
def test_calming_down_a_client_drops_it_at_once(loop, buffered):
    # Whether or not what we wrote is still waiting, no close handshake is waited
    # for and no frame of the read that passed the limit is handled.
    conn, t = server(loop, H2Options(max_ping_frames=5))
    t.take()
    t.buffered = buffered
    conn.data_received(PREFACE + PingFrame(0, opaque_data=b"12345678").serialize() * 6)
    out = t.take()
    assert t.aborted and goaway_code(out) == CALM
    assert [f[0] for f in frames(out)] == [7]  # the GOAWAY alone: no PING was answered


def test_big_heads_get_431_and_blocks_too_big_to_decode_end_the_connection(loop):
    opts = H2Options(max_header_list_size=1024)
    conn, t = server(loop, opts)
    head = Encoder().encode(GET + [(b"x-big", b"v" * 2000)])  # over 1 KiB, under 4 KiB encoded
    conn.data_received(PREFACE + SettingsFrame(0).serialize()
                       + HeadersFrame(1, head, flags=["END_HEADERS", "END_STREAM"]).serialize())
    answers = [Decoder().decode(payload, raw=True)
               for ftype, _, sid, payload in frames(t.take()) if ftype == 1 and sid == 1]
    assert dict(answers[0])[b":status"] == b"431" and not t.is_closing()  # the connection stays
    conn.data_received(HeadersFrame(3, b"\x00" * 3000).serialize()
                       + ContinuationFrame(3, b"\x00" * 1200).serialize())
    assert goaway_code(t.take()) == CALM and t.aborted
