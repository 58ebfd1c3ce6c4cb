"""Coarse deadlines for the idle connections of one event loop.

Thousands of keep-alive connections may sit idle at once. A timer handle per
connection costs memory (a ``TimerHandle`` and its bound callback, ~0.6 KB each)
and a heap operation per re-arm; their deadlines need no precision. One
``IdleWheel`` per event loop keeps the connections in quarter-second slots instead
(a set entry each) and ticks only while it holds any. When a slot's time comes,
each of its connections is told ``idle_deadline_passed()``: it closes itself, or
registers again for a later deadline (it was busy meanwhile). A connection that
closes leaves its slot at once, so nothing closed is kept.

A connection registers once when it becomes idle and stays registered while it is
busy: a request costs no wheel operation; a busy connection is looked at once per
``BUSY_LOOK`` seconds. The first look after a connection went idle is also when
its task ends and its parser is dropped ("parked", see ``server.py``): slots
shorter than the idle timeouts need it, because a connection that answered its
request holds those (~1.7 KB) until then. With thousands of clients each making
a request and staying idle, the memory they held at once stays with the process
even after they are parked.
"""

from __future__ import annotations

import asyncio
import math
from typing import Optional

__all__ = ["IdleWheel", "idle_wheel", "TICK", "BUSY_LOOK"]

#: Seconds per slot: an idle deadline passes up to this late, and a connection is
#: parked up to this long after it went idle.
TICK = 0.25

#: Seconds between two looks at a connection that is busy with a request.
BUSY_LOOK = 1.0


class IdleWheel:
    """The idle deadlines of one event loop's connections (see the module docstring)."""

    __slots__ = ("loop", "_slots", "_timer", "_armed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._slots: dict[int, list] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        self._armed = 0  # the slot the timer fires for

    def add(self, conn, when: float) -> int:
        """Tell ``conn.idle_deadline_passed()`` at ``when`` (loop time) or up to a tick
        later. Returns the slot, for ``discard``."""
        key = math.ceil(when / TICK)
        slot = self._slots.get(key)
        if slot is None:
            self._slots[key] = {conn}
        else:
            slot.add(conn)
        if self._timer is None or key < self._armed:
            if self._timer is not None:
                self._timer.cancel()
            self._armed = key
            self._timer = self.loop.call_at(key * TICK, self._sweep)
        return key

    def discard(self, conn, key: int) -> None:
        """Forget ``conn``, registered in slot ``key``."""
        slot = self._slots.get(key)
        if slot is not None:
            slot.discard(conn)
            if not slot:
                del self._slots[key]
                if not self._slots and self._timer is not None:
                    self._timer.cancel()
                    self._timer = None

    def _sweep(self) -> None:
        self._timer = None
        now = self.loop.time()
        for key in [k for k in self._slots if k * TICK <= now]:
            for conn in self._slots.pop(key):
                conn.idle_deadline_passed()
        if self._slots and self._timer is None:
            key = min(self._slots)
            self._armed = key
            self._timer = self.loop.call_at(max(key * TICK, now), self._sweep)


def idle_wheel(loop: asyncio.AbstractEventLoop) -> IdleWheel:
    """The wheel of ``loop``, made on first use and kept on the loop itself, so it
    lives exactly as long as the loop (and is collected with it)."""
    wheel = getattr(loop, "propylon_idle_wheel", None)
    if wheel is None:
        wheel = IdleWheel(loop)
        loop.propylon_idle_wheel = wheel  # type: ignore[attr-defined]
    return wheel
