"""Back-pressure for one asyncio transport, both ways, and the waiter wake-up.

Every protocol object that owns a transport (the HTTP/1 client and server, the L4
``Stream``, HTTP/2) needs the same two mechanisms:

* **Writing.** asyncio calls ``pause_writing()`` when the transport's send buffer
  passes its high-water mark and ``resume_writing()`` once it drained below the low
  one. A writer that must not grow the buffer awaits :meth:`FlowControl.drain`,
  which returns at once while writing is allowed and otherwise waits for
  ``resume_writing``, for the optional timeout, or for the connection's end.
* **Reading.** The owner buffers what it received until the application takes it.
  :meth:`FlowControl.received` pauses reading from the socket once more than
  ``high`` bytes wait, :meth:`FlowControl.consumed` resumes it at ``low`` or below;
  :meth:`pause_reading`/:meth:`resume_reading` do it unconditionally (a pipelined
  request, a tunnel whose other side is slow).

The owner forwards its asyncio callbacks (``pause_writing``, ``resume_writing``,
``connection_lost``) here and decides what an error means on its side: ``drain``
reports how the wait ended instead of raising a side-specific error.

``wake(fut, value)`` is the one way to complete a waiter that may already be done.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Optional

__all__ = ["FlowControl", "wake", "DRAINED", "DRAIN_TIMED_OUT", "DRAIN_LOST"]

#: How :meth:`FlowControl.drain` ended.
DRAINED = 0
DRAIN_TIMED_OUT = 1
DRAIN_LOST = 2


def wake(fut: Optional[asyncio.Future], value: object = None) -> None:
    """Complete ``fut`` with ``value`` unless it is None or already done."""
    if fut is not None and not fut.done():
        fut.set_result(value)


class FlowControl:
    """Write and read back-pressure of one transport. See the module docstring.

    ``high``/``low`` are the read-side marks in bytes (``low`` defaults to a
    quarter of ``high``). ``on_writable``, when set, is called on every
    ``resume_writing`` (a tunnel resumes reading its other side there).
    """

    # Slots: one per connection, and connections may sit idle by the thousand.
    __slots__ = ("transport", "high", "low", "write_paused", "read_paused", "lost", "on_writable", "_waiters")

    def __init__(self, transport: asyncio.BaseTransport, high: int = 256 * 1024,
                 low: Optional[int] = None) -> None:
        self.transport = transport
        self.high = high
        self.low = high // 4 if low is None else low
        self.write_paused = False
        self.read_paused = False
        self.lost = False
        self.on_writable: Optional[Callable[[], object]] = None
        # drain() callers (HTTP/2 streams may share a pause); a list once one waits.
        self._waiters: Optional[list] = None

    # --- the transport's callbacks, forwarded by the owner --------------------------
    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._waiters:
            self._wake_all(DRAINED)
        cb = self.on_writable
        if cb is not None:
            cb()

    def connection_lost(self) -> None:
        """The connection is gone: a pending ``drain`` returns ``DRAIN_LOST``."""
        self.lost = True
        self.write_paused = False
        if self._waiters:
            self._wake_all(DRAIN_LOST)

    def interrupt(self) -> None:
        """End pending ``drain`` waits with ``DRAIN_LOST`` without marking the
        connection lost: the owner gave up on what it was writing (an exchange
        that failed, a client that left)."""
        if self._waiters:
            self._wake_all(DRAIN_LOST)

    def _wake_all(self, how) -> None:
        waiters = self._waiters
        self._waiters = None
        for w in waiters:  # type: ignore[union-attr]
            wake(w, how)

    # --- writing ---------------------------------------------------------------------------
    async def drain(self, timeout: Optional[float] = None) -> int:
        """Wait until the peer took enough of what was written.

        Returns ``DRAINED`` (write more), ``DRAIN_TIMED_OUT`` (nothing moved for
        ``timeout`` seconds) or ``DRAIN_LOST`` (the connection ended).
        """
        if self.lost:
            return DRAIN_LOST
        if not self.write_paused:
            return DRAINED
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, wake, waiter, DRAIN_TIMED_OUT) if timeout is not None else None
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if self._waiters is not None and waiter in self._waiters:  # timed out or cancelled: still listed
                self._waiters.remove(waiter)

    # --- reading ---------------------------------------------------------------------------
    def pause_reading(self) -> None:
        if not self.read_paused and not self.lost:
            self.read_paused = True
            self.transport.pause_reading()  # type: ignore[attr-defined]

    def resume_reading(self) -> None:
        if self.read_paused and not self.lost:
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[attr-defined]

    def received(self, buffered) -> None:
        """The owner now holds ``buffered`` unread bytes: pause above ``high``."""
        if buffered > self.high and not self.read_paused:
            self.pause_reading()

    def consumed(self, buffered) -> None:
        """The application took bytes, ``buffered`` remain: resume at ``low`` or below."""
        if self.read_paused and buffered <= self.low:
            self.resume_reading()
