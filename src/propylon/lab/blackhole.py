"""A TCP listener on which new connections hang: the lab's unreachable address.

The seed lab used a "TEST-NET" address whose packets go nowhere, so a connect
hangs until the client gives up. On loopback we get the same effect without
leaving the machine: listen with the smallest backlog, never accept, and fill
the accept queue with our own connections. Linux then drops further SYNs, so a
client's ``connect`` retries silently until its own timeout fires.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Optional

from ._base import Endpoint, Member, MemberConfig

__all__ = ["BlackholeMember"]

log = logging.getLogger(__name__)

_FILL_TIMEOUT = 0.2
_MAX_FILLERS = 64


class BlackholeMember(Member):
    """Listener on 127.0.0.1:18099 whose accept queue is kept full."""

    name = "blackhole"
    default_port = 18099

    def __init__(self, config: MemberConfig) -> None:
        super().__init__(config)
        self._listener: Optional[socket.socket] = None
        self._fillers: list[socket.socket] = []

    async def start(self) -> list[Endpoint]:
        port = self.config.port(0, self.default_port)
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self.config.host, port))
        lsock.listen(0)
        self._listener = lsock
        addr = lsock.getsockname()
        await self._fill(addr)
        self.endpoints = [Endpoint(self.name, "tcp", addr[0], addr[1])]
        return self.endpoints

    async def _fill(self, addr: tuple[str, int]) -> None:
        """Connect to ourselves until a connect no longer completes: the queue is full."""
        loop = asyncio.get_running_loop()
        for _ in range(_MAX_FILLERS):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(s, addr), _FILL_TIMEOUT)
            except (asyncio.TimeoutError, OSError):
                s.close()
                break
            self._fillers.append(s)
        else:
            raise RuntimeError("blackhole: accept queue never filled up")
        log.debug("blackhole: accept queue full after %d connections", len(self._fillers))

    async def close(self) -> None:
        for s in self._fillers:
            s.close()
        self._fillers.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
