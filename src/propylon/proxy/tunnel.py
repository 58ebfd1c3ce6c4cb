"""Byte tunnel between client and upstream after a ``101 Switching Protocols``
(WebSocket and other ``Upgrade`` requests)."""

from __future__ import annotations

import asyncio
import time
from typing import Optional

__all__ = ["tunnel"]


async def tunnel(ds, up, idle_timeout: Optional[float]) -> None:
    """Shovel bytes both ways until one side closes, then close both.

    ``ds`` is the downstream HTTP/1 session (its head already answered with
    101), ``up`` the upstream ``H1ClientConnection``. A full write buffer on one
    side pauses reading on the other. ``idle_timeout`` (the peer's read timeout;
    None = none) closes a tunnel that carried nothing for that long.
    """
    loop = asyncio.get_running_loop()
    dconn = ds.conn
    done: asyncio.Future = loop.create_future()
    last = [time.monotonic()]

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def to_up(data: bytes) -> None:
        last[0] = time.monotonic()
        if up.closed:
            return
        up.transport.write(data)
        if up._write_paused:
            dconn.transport.pause_reading()

    def to_down(data: bytes) -> None:
        last[0] = time.monotonic()
        if dconn._closed:
            return
        dconn.transport.write(data)
        if dconn._write_paused:
            up.transport.pause_reading()

    up._tunnel_resume = lambda: dconn._closed or dconn.transport.resume_reading()
    dconn._tunnel_resume = lambda: up.closed or up.transport.resume_reading()
    pending_up = ds.raw_tunnel_data()
    pending_down = up.raw_tunnel_data()
    dconn._tunnel, dconn._tunnel_eof = to_up, finish
    up._tunnel, up._tunnel_eof = to_down, finish
    if pending_up:
        to_up(pending_up)
    if pending_down:
        to_down(pending_down)
    if dconn._closed or up.closed:
        finish()
    if dconn._paused:
        dconn._paused = False
        dconn.transport.resume_reading()

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
        up.close()
        dconn._close()
