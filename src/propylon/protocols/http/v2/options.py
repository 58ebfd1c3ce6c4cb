"""``H2Options``: the limits of the downstream HTTP/2 side, in one typed object
(read by the connection and its guards; described in docs/http2-limits.md)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["H2Options", "HEAD_SLACK"]

#: Heads up to this many times ``max_header_list_size`` are decoded (and answered
#: 431 when over the limit); a header block larger than that could not decode
#: within it (an encoded field is never larger than it counts decoded), so the
#: connection ends before such a block is buffered.
HEAD_SLACK = 4

# H2Options fields that may be 0: what a client earns per DATA frame or stream.
_ALLOWANCES = frozenset(("pings_per_data_frame", "window_updates_per_data_frame",
                         "priority_frames_per_stream"))


@dataclass(slots=True)
class H2Options:
    """Limits of the downstream HTTP/2 side (give them to ``http_proxy_service``).

    Streams and windows:

    * ``max_concurrent_streams``: streams a client may have open at once,
      advertised in SETTINGS; streams over it are refused (100).
    * ``max_header_list_size``: largest request head in bytes, HPACK-decoded and
      counted as RFC 9113 does; advertised in SETTINGS; larger heads get 431, and
      a header block (HEADERS + CONTINUATION) over 4 × this size ends the
      connection before it is buffered whole (64 KiB).
    * ``initial_window_size``: request body a client may send on one stream before
      the application reads it (1 MiB).
    * ``connection_window_size``: the same for all streams together (4 MiB).
    * ``idle_timeout``: seconds a connection with no open stream is kept (60).

    Floods: per connection, counted over ``flood_window`` seconds (10); passing a
    limit gets GOAWAY (ENHANCE_YOUR_CALM) and the connection closed.

    * ``max_ping_frames`` (100), plus ``pings_per_data_frame`` (1) for every DATA
      frame we sent in the window.
    * ``max_settings_frames`` (100).
    * ``max_window_update_frames`` (500), plus ``window_updates_per_data_frame``
      (4) for every DATA frame we sent in the window.
    * ``max_priority_frames`` (100), plus ``priority_frames_per_stream`` (5) for
      every stream opened in the window.
    * ``max_rst_stream_frames`` (400).
    * ``max_empty_frames``: DATA frames with no payload that do not end their
      stream, and CONTINUATION frames with no payload (100).
    * ``rapid_reset_max`` / ``rapid_reset_window``: more streams cancelled by the
      client or refused within that many seconds (200 in 10 s).
    * ``rapid_reset_min_streams`` / ``rapid_reset_ratio``: after that many streams,
      more cancelled or refused than ratio × completed ones (100, 2.0).

    Fairness:

    * ``max_write_buffer``: bytes waiting to be sent to the client above which we
      stop reading from it until it has read them (256 KiB).
    * ``max_frames_per_turn``: frames handled from one read before the event loop
      gets a turn; the rest follow in the next turns (256).

    The defaults let browsers, curl, gRPC and h2load clients through untouched and
    cut a flooder off within a few hundred frames, as nginx does.
    """

    max_concurrent_streams: int = 100
    max_header_list_size: int = 64 * 1024
    initial_window_size: int = 1 << 20
    connection_window_size: int = 4 << 20
    idle_timeout: float = 60.0
    flood_window: float = 10.0
    max_ping_frames: int = 100
    pings_per_data_frame: int = 1
    max_settings_frames: int = 100
    max_window_update_frames: int = 500
    window_updates_per_data_frame: int = 4
    max_priority_frames: int = 100
    priority_frames_per_stream: int = 5
    max_rst_stream_frames: int = 400
    max_empty_frames: int = 100
    rapid_reset_max: int = 200
    rapid_reset_window: float = 10.0
    rapid_reset_min_streams: int = 100
    rapid_reset_ratio: float = 2.0
    max_write_buffer: int = 256 * 1024
    max_frames_per_turn: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            zero_ok = f.name in _ALLOWANCES
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or value < 0 or (value == 0 and not zero_ok):
                what = "a number >= 0" if zero_ok else "a positive number"
                raise ValueError(f"H2Options.{f.name} must be {what}, got {value!r}")
            if f.type in ("int", int) and not isinstance(value, int):
                raise ValueError(f"H2Options.{f.name} must be an integer, got {value!r}")

    @classmethod
    def from_server_options(cls, options: Any) -> "H2Options":
        """Defaults, with the idle timeout and head size of the HTTP/1 options."""
        opts = cls()
        if options is not None:
            opts.idle_timeout = getattr(options, "keepalive_timeout", opts.idle_timeout)
            opts.max_header_list_size = getattr(options, "max_header_bytes", opts.max_header_list_size)
        return opts
