"""The shutdown watch: how a running service learns that the process is stopping.

A leaf module (it imports nothing from Propylon): the server sets the watch, and
services, apps, the proxy and load balancers read it without importing the server.
"""

from __future__ import annotations

import asyncio
from typing import Callable

__all__ = ["ShutdownWatch"]


class ShutdownWatch:
    """A one-way flag, set once when graceful shutdown begins.

    Code may poll it (``if shutdown: ...``, ``shutdown.is_set()`` or the plain
    attribute ``shutdown.triggered``, which hot paths read), await it
    (``await shutdown.wait()``) or register a callback that runs on the event loop
    when it is set (``shutdown.on_shutdown(fn)``; runs at once if already set).
    One watch exists per worker process; the server sets it.
    """

    __slots__ = ("triggered", "_event", "_callbacks")

    def __init__(self) -> None:
        self.triggered = False
        self._event: asyncio.Event | None = None
        self._callbacks: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self.triggered

    def __bool__(self) -> bool:
        return self.triggered

    async def wait(self) -> None:
        if self.triggered:
            return
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        if self.triggered:
            callback()
        else:
            self._callbacks.append(callback)

    def remove_callback(self, callback: Callable[[], None]) -> None:
        try:
            self._callbacks.remove(callback)
        except ValueError:
            pass

    def trigger(self) -> None:
        """Set the flag and run the callbacks. Called by the server only."""
        if self.triggered:
            return
        self.triggered = True
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb()
