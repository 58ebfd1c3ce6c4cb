"""Abuse guards for one downstream HTTP/2 connection.

Two guards, both sans-IO (the connection feeds them and acts on their verdict):

``FrameGuard`` reads the frame headers of what the client sends *before* the ``h2``
library parses it, so a flood is recognised without paying for the frames it is
made of, and without queueing the replies ``h2`` would write for them (every PING
and SETTINGS frame is answered). Per connection and per time window it counts

* PING frames (each costs us a reply), beyond an allowance that grows with the
  DATA frames we sent in the window (gRPC clients measure the bandwidth with a
  PING per round trip while data flows);
* SETTINGS frames (each costs us a reply too);
* WINDOW_UPDATE frames, beyond an allowance that grows with the DATA frames we
  sent in the window (a client downloading acknowledges what it reads);
* PRIORITY frames, beyond an allowance that grows with the streams opened;
* RST_STREAM frames;
* empty frames: DATA with no payload that does not end its stream, and
  CONTINUATION with no payload;

and bounds the header block a HEADERS frame and its CONTINUATION frames may add
up to. It also bounds the work of one read: ``scan`` hands back at most
``frames_per_turn`` frames; the connection keeps the rest for the next turn of the
event loop. While the client leaves our replies unread (our write buffer is full)
that rest is not handled at all; ``owes_replies`` tells whether it asks for more
replies than a client that reads ever leaves unanswered, which is a flood too.

``ResetGuard`` counts streams that ended unanswered because the client cancelled
them or was refused one (CVE-2023-44487, rapid reset): each costs the server a
request's work and the client almost nothing, and the concurrency limit never bites
because every stream is gone a moment later. It trips when either

* more than ``max_resets`` of them fall within the last ``window`` seconds, or
* after the first ``min_streams`` streams, they outnumber ``ratio`` × completed ones.

Either guard tripping means GOAWAY (ENHANCE_YOUR_CALM) and the end of the
connection.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Optional

from .options import HEAD_SLACK, H2Options

__all__ = ["FrameGuard", "ResetGuard", "STALLED_REPLIES"]

_PREFACE_LEN = 24  # b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEAD = 9          # every frame starts with a 9-byte header

# Frame types (RFC 9113 6) and flags the guard looks at.
_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS = 0, 1, 2, 3, 4
_PING, _WINDOW_UPDATE, _CONTINUATION = 6, 8, 9
_END_STREAM, _END_HEADERS, _PADDED = 0x1, 0x4, 0x8
_ACK = 0x1  # on PING and SETTINGS

#: PING and SETTINGS frames (each owing a reply) a client may have waiting while it
#: does not read our replies. One that reads has one or two unanswered at a time
#: (a PING to measure the round trip, its SETTINGS); more than this, sent on while
#: the replies it already has pile up unread, is a flood whatever the frame limits.
STALLED_REPLIES = 8


class FrameGuard:
    """Counts the frames a client sends against ``opts`` (the ``max_*_frames``
    limits and their allowances, ``flood_window``, ``max_frames_per_turn``, and
    header blocks up to ``HEAD_SLACK`` × ``max_header_list_size``); see the module
    docstring.

    ``scan(data, now, data_frames_sent)`` returns how many bytes of ``data`` the
    connection may hand to ``h2`` in this turn. When a limit is passed, ``tripped``
    names what was passed and nothing of ``data`` should be processed.
    """

    __slots__ = ("opts", "header_block", "tripped", "pings", "settings", "window_updates", "priorities",
                 "rst_streams", "empties", "streams", "_window_start", "_data_base",
                 "_preface", "_carry", "_skip", "_block", "_flood_window", "_per_turn")

    def __init__(self, opts: H2Options, preface: bool = True) -> None:
        self.opts = opts
        self.header_block = opts.max_header_list_size * HEAD_SLACK
        self.tripped: Optional[str] = None
        # Counts in the current window, by kind.
        self.pings = self.settings = self.window_updates = self.priorities = 0
        self.rst_streams = self.empties = self.streams = 0
        # (read once: every read is scanned)
        self._flood_window = opts.flood_window
        self._per_turn = opts.max_frames_per_turn
        self._window_start = -opts.flood_window  # the first scan opens a window
        self._data_base = 0
        # Where the byte stream stands between reads.
        self._preface = _PREFACE_LEN if preface else 0
        self._carry = b""   # a frame header split over two reads
        self._skip = 0      # payload bytes of the current frame still to come
        self._block = -1    # bytes of the header block in progress, -1 when none

    def counts(self) -> dict[str, int]:
        """The counts of the current window, by frame kind (for logs)."""
        return {"PING": self.pings, "SETTINGS": self.settings, "WINDOW_UPDATE": self.window_updates,
                "PRIORITY": self.priorities, "RST_STREAM": self.rst_streams, "empty": self.empties,
                "HEADERS": self.streams}

    def scan(self, data, now: float, data_frames_sent) -> int:
        """Count the frames of ``data``; return the bytes to process now (all of
        them, or up to the start of frame ``frames_per_turn + 1``)."""
        if now - self._window_start >= self._flood_window:
            self._window_start = now
            self._data_base = data_frames_sent
            self.pings = self.settings = self.window_updates = self.priorities = 0
            self.rst_streams = self.empties = self.streams = 0
        n = len(data)
        pos = 0
        if self._preface:
            k = min(self._preface, n)
            self._preface -= k
            pos = k
        if self._skip:
            k = min(self._skip, n - pos)
            self._skip -= k
            pos += k
        carried = len(self._carry)
        if carried:
            buf = self._carry + bytes(data[pos:])
            n = len(buf)
            pos = 0
            self._carry = b""
        else:
            # (a backlog is a memoryview: bytes are read in C when compiled)
            buf = data if type(data) is bytes else bytes(data)
        frames = 0
        while pos < n:
            if n - pos < _HEAD:
                self._carry = bytes(buf[pos:])
                break
            if frames == self._per_turn:
                return pos - carried  # the rest waits for the next turn
            frames += 1
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            flags = buf[pos + 4]
            # The pad length of a padded frame is its first payload byte, when here.
            pad = buf[pos + _HEAD] if flags & _PADDED and pos + _HEAD < n else 0
            if self._count(buf[pos + 3], flags, length, pad, data_frames_sent):
                return 0
            end = pos + _HEAD + length
            if end > n:
                self._skip = end - n
                break
            pos = end
        return len(data)

    @staticmethod
    def owes_replies(data) -> bool:
        """True when the frames of ``data`` (left over from a read, so it starts at
        a frame header) hold more than ``STALLED_REPLIES`` PING or SETTINGS frames
        that each owe a reply."""
        n = len(data)
        pos = 0
        owed = 0
        while n - pos >= _HEAD:
            ftype = data[pos + 3]
            if (ftype == _PING or ftype == _SETTINGS) and not data[pos + 4] & _ACK:
                owed += 1
                if owed > STALLED_REPLIES:
                    return True
            pos += _HEAD + ((data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2])
        return False

    def _count(self, ftype, flags, length, pad, data_frames_sent) -> bool:
        """Count one frame; True (and ``tripped`` set) when it passes a limit."""
        o = self.opts
        if ftype == _DATA:
            if length - (pad + 1 if flags & _PADDED else 0) <= 0 and not flags & _END_STREAM:
                self.empties += 1
                if self.empties > o.max_empty_frames:
                    self.tripped = "empty DATA"
        elif ftype == _HEADERS:
            self.streams += 1
            if not flags & _END_HEADERS:
                self._block = length
                if length > self.header_block:
                    self.tripped = "header block"
        elif ftype == _CONTINUATION:
            if length == 0:
                self.empties += 1
                if self.empties > o.max_empty_frames:
                    self.tripped = "empty CONTINUATION"
            if self._block >= 0:
                self._block += length
                if self._block > self.header_block:
                    self.tripped = "header block"
                elif flags & _END_HEADERS:
                    self._block = -1
        elif ftype == _PING:
            self.pings += 1
            if self.pings > o.max_ping_frames + o.pings_per_data_frame * (data_frames_sent - self._data_base):
                self.tripped = "PING"
        elif ftype == _SETTINGS:
            self.settings += 1
            if self.settings > o.max_settings_frames:
                self.tripped = "SETTINGS"
        elif ftype == _WINDOW_UPDATE:
            self.window_updates += 1
            sent = data_frames_sent - self._data_base
            if self.window_updates > o.max_window_update_frames + o.window_updates_per_data_frame * sent:
                self.tripped = "WINDOW_UPDATE"
        elif ftype == _RST_STREAM:
            self.rst_streams += 1
            if self.rst_streams > o.max_rst_stream_frames:
                self.tripped = "RST_STREAM"
        elif ftype == _PRIORITY:
            self.priorities += 1
            if self.priorities > o.max_priority_frames + o.priority_frames_per_stream * self.streams:
                self.tripped = "PRIORITY"
        return self.tripped is not None


class ResetGuard:
    """Counts streams that ended unanswered; ``on_reset()`` says when to give up."""

    __slots__ = ("max_resets", "window", "min_streams", "ratio", "_times", "_clock",
                 "resets", "completed")

    def __init__(self, max_resets: int = 200, window: float = 10.0, min_streams: int = 100,
                 ratio: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_resets = max_resets
        self.window = window
        self.min_streams = min_streams
        self.ratio = ratio
        self._times: deque[float] = deque()
        self._clock = clock
        self.resets = 0
        self.completed = 0

    def on_complete(self) -> None:
        """A stream got its whole response."""
        self.completed += 1

    def on_reset(self) -> bool:
        """A stream was cancelled by the client before its response ended, or
        refused (over the concurrency limit, or after GOAWAY).

        Returns True when the connection should be closed.
        """
        self.resets += 1
        now = self._clock()
        times = self._times
        times.append(now)
        horizon = now - self.window
        while times and times[0] < horizon:
            times.popleft()
        if len(times) > self.max_resets:
            return True
        total = self.resets + self.completed
        return total > self.min_streams and self.resets > self.ratio * self.completed
