"""Driving the HTTP/2 codec with bytes alone: a transport that keeps what the
codec writes, an event loop stepped by hand, and a reader for the frames written."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator, Optional

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class BytesTransport(asyncio.Transport):
    """Collects writes; records pause/resume of reading, close and abort.

    ``buffered`` is what ``get_write_buffer_size`` reports (0: the peer reads).
    """

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.reading = True
        self.closed = False
        self.aborted = False
        self.buffered = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        self.high = high

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.out += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def take(self) -> bytes:
        """What was written since the last call."""
        data = bytes(self.out)
        self.out.clear()
        return data


def frames(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of every whole frame in ``data``."""
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        yield data[pos + 3], data[pos + 4], sid, data[pos + 9:pos + 9 + length]
        pos += 9 + length


def goaway_code(data: bytes) -> Optional[int]:
    """The error code of the GOAWAY frame in ``data``, if one is there."""
    for ftype, _, _, payload in frames(data):
        if ftype == 7:
            return int.from_bytes(payload[4:8], "big")
    return None


def step(loop: asyncio.AbstractEventLoop, turns: int = 1) -> None:
    """Let the loop run ``turns`` iterations (callbacks due now, not those they add)."""
    for _ in range(turns):
        loop.call_soon(loop.stop)
        loop.run_forever()
