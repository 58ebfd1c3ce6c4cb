"""Small loopback servers and probes shared by the load-balancing tests."""

from __future__ import annotations

import asyncio
import socket
from typing import Optional

from propylon.lb import Backend


class TinyHttp:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request the same way.

    ``freeze=True`` accepts connections and reads the request but never answers;
    ``raw`` replaces the answer with those exact bytes.
    ``stop()`` closes the listener and every open connection; ``start(port)`` can
    bring it back on the same port.
    """

    def __init__(self, status: int = 200, body: bytes = b"ok", freeze: bool = False,
                 raw: Optional[bytes] = None) -> None:
        self.status = status
        self.raw = raw
        self.body = body
        self.freeze = freeze
        self.port = 0
        self.requests: list[bytes] = []
        self.connections = 0
        self._server: Optional[asyncio.AbstractServer] = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def backend(self) -> Backend:
        return Backend(f"127.0.0.1:{self.port}")

    async def start(self, port: Optional[int] = None, ssl=None) -> "TinyHttp":
        for attempt in range(50):
            try:
                self._server = await asyncio.start_server(
                    self._handle, "127.0.0.1", port if port is not None else self.port, ssl=ssl
                )
                break
            except OSError:
                # Coming back on the same port: the old socket may linger briefly.
                if not port or attempt == 49:
                    raise
                await asyncio.sleep(0.02)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(head)
                if self.freeze:
                    await asyncio.sleep(3600)
                writer.write(self.raw if self.raw is not None else
                    b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s"
                    % (self.status, len(self.body), self.body)
                )
                await writer.drain()
                if b"connection: close" in head.lower():
                    return
        except asyncio.CancelledError:
            return
        finally:
            self._writers.discard(writer)
            writer.close()


class LagMeter:
    """Measures how late the event loop wakes a 5 ms sleeper (the loop's lag)."""

    def __init__(self) -> None:
        self.max_lag = 0.0
        self.ticks = 0
        self._task: Optional[asyncio.Task] = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.005)
            self.max_lag = max(self.max_lag, loop.time() - t - 0.005)
            self.ticks += 1

    def __enter__(self) -> "LagMeter":
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


class Blackhole:
    """A loopback listener whose accept queue is full, so new connects hang until
    the client's timeout (the stand-in for an unreachable address)."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._fillers = []
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self._fillers.append(s)

    @property
    def backend(self) -> Backend:
        return Backend(f"127.0.0.1:{self.port}")

    def close(self) -> None:
        for s in self._fillers:
            s.close()
        self._listener.close()
