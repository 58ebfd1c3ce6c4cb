"""The HTTP/2 codec both sides drive: framing, HPACK, stream states and windows.

Two implementations behind one interface:

* ``NativeCodec`` (``_nghttp2.pyx``), on libnghttp2, compiled when the library, its
  headers and a C compiler are present (see setup.py);
* ``H2Codec`` (this module), on the pure-Python ``h2`` library.

``PROPYLON_H2_CODEC`` picks one: ``native`` or ``h2``; by default the native codec
when it was built, ``h2`` otherwise. ``CODEC`` names the one in use.

A codec is sans-IO. ``receive(data)`` returns what happened as a list of tuples
``(kind, stream_id, a, b)``, a header block arriving as one list of ``(name, value)``
bytes pairs:

=============  =======================================================
``HEADERS``    a request or response head: ``a`` the fields, or None when
               they passed ``max_header_list_size`` (the rest was dropped);
               ``b`` True when the head also ended the stream
``TRAILERS``   ``a`` the trailer fields
``DATA``       ``a`` the bytes, ``b`` how much window they took
``END``        the peer ended the stream
``WINDOW``     a send window grew (stream 0: the connection's)
``RESET``      the peer reset the stream; ``a`` the error code
``REFUSED``    the codec refused a stream over the concurrency limit
``SETTINGS``   the peer's SETTINGS; ``a`` True when its initial window changed
``PING_ACK``   ``a`` the 8 opaque bytes of our PING it answered
``GOAWAY``     ``stream_id`` the last stream the peer will process, ``a`` the code
=============  =======================================================

A codec may stop partway through ``data`` (the native one does, to let the
connection count a burst of reset streams as it goes): what it left is in
``unconsumed`` (None when all was read), to be given to ``receive`` again once the
events are handled.

Everything the codec writes collects until ``data_to_send()``. Sending on a stream
that can no longer send raises ``CodecError``, as does input that breaks the
protocol for the whole connection.
"""

from __future__ import annotations

import os
from typing import Optional

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from .errors import CodecError

__all__ = ["CODEC", "Codec", "CodecError", "H2Codec", "HEADERS", "TRAILERS", "DATA", "END", "WINDOW",
           "RESET", "REFUSED", "SETTINGS", "PING_ACK", "GOAWAY", "NO_ERROR", "PROTOCOL_ERROR",
           "INTERNAL_ERROR", "REFUSED_STREAM", "CANCEL", "ENHANCE_YOUR_CALM", "reset_code_name"]

HEADERS, TRAILERS, DATA, END, WINDOW, RESET, REFUSED, SETTINGS, PING_ACK, GOAWAY = range(10)

# RFC 9113 7 error codes the connections use.
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR = 0x0, 0x1, 0x2
REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0x7, 0x8, 0xB


def reset_code_name(code: int) -> str:
    """A readable name for an HTTP/2 error code."""
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return str(code)


_E = h2.events
_FAILURES = (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError)
_S = h2.settings.SettingCodes


class H2Codec:
    """The codec interface on the ``h2`` library (see the module docstring).

    ``max_concurrent_streams`` and ``max_header_list_size`` are advertised; the
    connection enforces them (``h2`` is given room so that a stream over the limit
    is refused alone rather than failing the connection). ``max_header_list_size``
    × ``header_slack`` is where HPACK decoding gives up on the connection.
    """

    def __init__(self, client_side: bool, *, initial_window_size: int, connection_window_size: int,
                 max_concurrent_streams: Optional[int] = None, max_header_list_size: Optional[int] = None,
                 header_slack: int = 1) -> None:
        cfg = h2.config.H2Configuration(client_side=client_side, header_encoding=None)
        self._h2 = c = h2.connection.H2Connection(config=cfg)
        self._open_state = (h2.connection.ConnectionState.CLIENT_OPEN if client_side
                            else h2.connection.ConnectionState.SERVER_OPEN)
        initial = {_S.INITIAL_WINDOW_SIZE: initial_window_size}
        if client_side:
            initial[_S.ENABLE_PUSH] = 0
        if max_concurrent_streams is not None:
            initial[_S.MAX_CONCURRENT_STREAMS] = max_concurrent_streams
        if max_header_list_size is not None:
            initial[_S.MAX_HEADER_LIST_SIZE] = max_header_list_size
            c.decoder.max_header_list_size = max_header_list_size * header_slack
        c.local_settings = h2.settings.Settings(client=client_side, initial_values=initial)
        c.initiate_connection()
        if max_concurrent_streams is not None:
            # h2 treats a stream over the advertised limit as a connection error; a
            # client may open streams before our SETTINGS reach it, so once they are
            # sent h2 is given room (settings already in force, nothing left for the
            # client's ACK to apply) and the server refuses such streams one by one.
            initial[_S.MAX_CONCURRENT_STREAMS] = 2 ** 31 - 1
            c.local_settings = h2.settings.Settings(client=client_side, initial_values=initial)
        extra = connection_window_size - 65535
        if extra > 0:
            c.increment_flow_control_window(extra)
        self.terminated = False
        self.unconsumed = None

    # --- input -------------------------------------------------------------------------
    def receive(self, data) -> list:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise CodecError(str(exc)) from None
        out = []
        add = out.append
        for ev in events:
            t = type(ev)
            if t is _E.DataReceived:
                add((DATA, ev.stream_id, ev.data, ev.flow_controlled_length))
            elif t is _E.RequestReceived or t is _E.ResponseReceived or t is _E.InformationalResponseReceived:
                add((HEADERS, ev.stream_id, ev.headers, ev.stream_ended is not None))
            elif t is _E.StreamEnded:
                add((END, ev.stream_id, None, None))
            elif t is _E.WindowUpdated:
                add((WINDOW, ev.stream_id, None, None))
            elif t is _E.TrailersReceived:
                add((TRAILERS, ev.stream_id, ev.headers, None))
            elif t is _E.StreamReset:
                add((RESET, ev.stream_id, ev.error_code, None))
            elif t is _E.RemoteSettingsChanged:
                add((SETTINGS, 0, _S.INITIAL_WINDOW_SIZE in ev.changed_settings, None))
            elif t is _E.PingAckReceived:
                add((PING_ACK, 0, ev.ping_data, None))
            elif t is _E.ConnectionTerminated:
                if ev.error_code == NO_ERROR:
                    # h2 takes any GOAWAY as the end of everything, but streams up to
                    # its last id may still complete (RFC 9113 6.8).
                    self._h2.state_machine.state = self._open_state
                last = ev.last_stream_id if ev.last_stream_id is not None else 0
                add((GOAWAY, last, ev.error_code, None))
        return out

    # --- output ------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        return self._h2.data_to_send()

    def request(self, fields: list, end_stream: bool) -> int:
        """Open the next client stream with ``fields``; returns its id."""
        try:
            sid = self._h2.get_next_available_stream_id()
            self._h2.send_headers(sid, fields, end_stream=end_stream)
        except _FAILURES as exc:
            raise CodecError(str(exc)) from None
        return sid

    def send_headers(self, sid: int, fields: list, end_stream: bool) -> None:
        try:
            self._h2.send_headers(sid, fields, end_stream=end_stream)
        except _FAILURES as exc:
            raise CodecError(str(exc)) from None

    def send_data(self, sid: int, data: bytes, end_stream: bool) -> None:
        try:
            self._h2.send_data(sid, data, end_stream=end_stream)
        except _FAILURES as exc:
            raise CodecError(str(exc)) from None

    def end_stream(self, sid: int) -> None:
        try:
            self._h2.end_stream(sid)
        except _FAILURES as exc:
            raise CodecError(str(exc)) from None

    def reset_stream(self, sid: int, code: int) -> None:
        """RST_STREAM, unless the stream is already closed."""
        try:
            self._h2.reset_stream(sid, code)
        except _FAILURES:
            pass

    def acknowledge(self, sid: int, n: int) -> None:
        """``n`` received bytes of ``sid`` were consumed: their window goes back."""
        try:
            self._h2.acknowledge_received_data(n, sid)
        except _FAILURES:
            pass

    def send_window(self, sid: int) -> int:
        """DATA bytes ``sid`` may send now (stream and connection windows)."""
        try:
            return min(self._h2.local_flow_control_window(sid), self._h2.max_outbound_frame_size)
        except _FAILURES as exc:
            raise CodecError(str(exc)) from None

    def goaway(self, code: int, last_stream_id: Optional[int] = None) -> None:
        """GOAWAY; after a graceful one (NO_ERROR) open streams may still finish."""
        c = self._h2
        state = c.state_machine.state
        try:
            c.close_connection(error_code=code, last_stream_id=last_stream_id)
        except _FAILURES:
            return
        if code == NO_ERROR:
            c.state_machine.state = state

    def ping(self, opaque: bytes) -> None:
        self._h2.ping(opaque)

    # --- state -------------------------------------------------------------------------
    def peer_max_concurrent_streams(self) -> int:
        return self._h2.remote_settings.max_concurrent_streams

    def last_stream_id(self) -> int:
        """The highest stream id the peer opened."""
        return self._h2.highest_inbound_stream_id


Codec = H2Codec

_choice = os.environ.get("PROPYLON_H2_CODEC", "").strip().lower()
if _choice not in ("", "native", "h2"):
    raise ImportError(f"PROPYLON_H2_CODEC must be 'native' or 'h2', got {_choice!r}")
CODEC = "h2"
if _choice != "h2":
    try:
        from ._nghttp2 import NativeCodec
    except ImportError:
        if _choice == "native":
            raise ImportError("PROPYLON_H2_CODEC=native, but the libnghttp2 codec was not built "
                              "(needs libnghttp2-dev, Cython and a C compiler; see setup.py)") from None
    else:
        Codec = NativeCodec  # type: ignore[misc,assignment]
        CODEC = "native"
