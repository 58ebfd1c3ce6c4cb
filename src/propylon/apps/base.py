"""The contract between a listening service and what it serves."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Callable

from ..shutdown import ShutdownWatch

__all__ = ["ListeningApp"]


class ListeningApp(ABC):
    """Anything a listening :class:`~propylon.services.Service` can run.

    The service binds (or inherits) the listening sockets and, in each worker
    process, calls ``loop.create_server(app.protocol_factory(shutdown), sock=...)``.
    The app owns every accepted connection from then on: stream apps wrap it in a
    :class:`~propylon.protocols.l4.Stream`, the HTTP proxy drives it with its codec.

    On graceful shutdown the service stops accepting, the server sets ``shutdown``,
    and the service awaits :meth:`wait_drained` for up to the grace period.
    """

    @abstractmethod
    def protocol_factory(self, shutdown: ShutdownWatch) -> Callable[[], asyncio.BaseProtocol]:
        """Return a factory building one protocol object per accepted connection."""

    async def wait_drained(self) -> None:
        """Return once no connection is being served (default: at once)."""
        return None
