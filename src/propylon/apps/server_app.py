"""Raw stream applications: one coroutine call per accepted connection."""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from typing import Callable, Optional

from ..protocols.l4.stream import Stream, StreamProtocol
from ..shutdown import ShutdownWatch
from .base import ListeningApp

__all__ = ["ServerApp"]

log = logging.getLogger(__name__)


class _Live:
    """The connections one process is serving, so shutdown can wait for them."""

    __slots__ = ("tasks", "idle")

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def add(self, task: asyncio.Task) -> None:
        self.tasks.add(task)
        self.idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not self.tasks:
            self.idle.set()


class ServerApp(ListeningApp):
    """Base class for applications that work on the raw byte stream (Pingora's ``ServerApp``).

    Override :meth:`process_new`. It is called with each new connection; return
    ``None`` when done (the stream is then closed), or return the stream to be
    called again with it (a kept-alive connection) unless shutdown has begun. An
    exception is logged and the connection aborted (a ``ConnectionError``, the
    peer leaving, only at debug level). The app counts the connections
    it serves so that graceful shutdown can wait for them (:meth:`wait_drained`).
    Subclasses need not call ``super().__init__()``.
    """

    @abstractmethod
    async def process_new(self, stream: Stream, shutdown: ShutdownWatch) -> Optional[Stream]:
        """Serve one connection; return it to be called again, or None to close it."""

    def _live_set(self) -> _Live:
        live = self.__dict__.get("_propylon_live")
        if live is None:
            live = self.__dict__["_propylon_live"] = _Live()
        return live

    def protocol_factory(self, shutdown: ShutdownWatch) -> Callable[[], asyncio.BaseProtocol]:
        """One :class:`StreamProtocol` per connection, each served by its own task."""
        live = self._live_set()
        serve = self._serve

        def on_connected(stream: Stream) -> None:
            live.add(asyncio.get_running_loop().create_task(serve(stream, shutdown)))

        return lambda: StreamProtocol(on_connected)

    async def _serve(self, stream: Stream, shutdown: ShutdownWatch) -> None:
        try:
            while True:
                kept = await self.process_new(stream, shutdown)
                if kept is None or shutdown.is_set():
                    break
                stream = kept
        except ConnectionError as e:
            # The peer went away mid-conversation: routine, not an application bug.
            log.debug("%s: connection with %s lost: %r", type(self).__name__, stream.peer_addr, e)
            stream.abort()
            return
        except Exception:
            log.exception("%s: error while serving %s", type(self).__name__, stream.peer_addr)
            stream.abort()
            return
        stream.close()

    async def wait_drained(self) -> None:
        """Return once this process serves no connection."""
        await self._live_set().idle.wait()

    def live_connections(self) -> int:
        """How many connections this process is serving now."""
        return len(self._live_set().tasks)
