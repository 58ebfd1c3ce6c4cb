"""Byte tunnel between client and upstream after a ``101 Switching Protocols``
(WebSocket and other ``Upgrade`` requests)."""

from __future__ import annotations

import asyncio
import time
from typing import Optional

from ..protocols.flow import wake
from ..protocols.http.interfaces import DownstreamSession, TunnelEnd, UpstreamExchange

__all__ = ["tunnel"]


async def tunnel(ds: DownstreamSession, up: UpstreamExchange, idle_timeout: Optional[float]) -> None:
    """Shovel bytes both ways until one side closes, then close both.

    ``ds`` is the downstream session (its head already answered with 101), ``up``
    the upstream exchange; each turns into a :class:`TunnelEnd` with
    ``into_tunnel``. A full write buffer on one side pauses reading on the other
    until that side drained. ``idle_timeout`` (the peer's read timeout; None =
    none) closes a tunnel that carried nothing for that long.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    last = [time.monotonic()]
    down: Optional[TunnelEnd] = None
    upper: Optional[TunnelEnd] = None

    def finish() -> object:
        wake(done)
        return None

    def to_up(data: bytes) -> None:
        last[0] = time.monotonic()
        if upper.send(data):  # type: ignore[union-attr]
            down.pause_reading()  # type: ignore[union-attr]

    def to_down(data: bytes) -> None:
        last[0] = time.monotonic()
        if down.send(data):  # type: ignore[union-attr]
            upper.pause_reading()  # type: ignore[union-attr]

    def down_writable() -> object:
        return upper is not None and upper.resume_reading()

    def up_writable() -> object:
        return down is not None and down.resume_reading()

    down, pending_up = ds.into_tunnel(to_up, finish, down_writable)
    upper, pending_down = up.into_tunnel(to_down, finish, up_writable)
    if pending_up:
        to_up(pending_up)
    if pending_down:
        to_down(pending_down)
    if down.closed or upper.closed:
        finish()

    timer = None

    def check_idle() -> None:
        nonlocal timer
        idle = time.monotonic() - last[0]
        if idle >= idle_timeout:  # type: ignore[operator]
            finish()
        else:
            timer = loop.call_later(idle_timeout - idle, check_idle)  # type: ignore[operator]

    if idle_timeout is not None:
        timer = loop.call_later(idle_timeout, check_idle)
    try:
        await done
    finally:
        if timer is not None:
            timer.cancel()
        upper.close()
        down.close()
