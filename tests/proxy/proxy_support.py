"""Fixtures for engine tests: a proxy served from a background event loop, small
scripted upstreams on ephemeral loopback ports, and the forwarder as a process."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from propylon.protocols.http.v1.server import HttpServerOptions
from propylon.proxy.service import HttpProxyApp
from propylon.shutdown import ShutdownWatch
from support import LoopThread, free_port, wait_port

HERE = Path(__file__).resolve().parent


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


class RunningProxy:
    def __init__(self, lt: LoopThread, app: HttpProxyApp, port: int, server, shutdown: ShutdownWatch) -> None:
        self.lt, self.app, self.port, self.server, self.shutdown = lt, app, port, server, shutdown

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def start_proxy(loop_thread: LoopThread):
    """``start_proxy(proxy, conf=None, options=None, ssl=None, compression=None)`` serves
    ``proxy`` on a free port."""
    started: list[RunningProxy] = []

    def start(proxy, conf=None, options: Optional[HttpServerOptions] = None, ssl=None,
              compression=None) -> RunningProxy:
        app = HttpProxyApp(proxy, conf, options, compression=compression)
        shutdown = ShutdownWatch()

        async def serve():
            return await asyncio.get_running_loop().create_server(
                app.protocol_factory(shutdown), "127.0.0.1", 0, ssl=ssl)

        server = loop_thread.run(serve())
        port = server.sockets[0].getsockname()[1]
        rp = RunningProxy(loop_thread, app, port, server, shutdown)
        started.append(rp)
        return rp

    yield start
    for rp in started:
        rp.server.close()


class ScriptedUpstream:
    """A raw TCP upstream: ``handler(reader, writer)`` per connection; counts
    connections and keeps every byte received."""

    def __init__(self, lt: LoopThread, handler: Callable) -> None:
        self.lt = lt
        self.handler = handler
        self.connections = 0
        self.received = bytearray()
        self.server = None
        self.port = 0

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def start(self) -> "ScriptedUpstream":
        async def go():
            return await asyncio.start_server(self._on_conn, "127.0.0.1", 0)

        self.server = self.lt.run(go())
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def read_request(up: ScriptedUpstream, reader: asyncio.StreamReader) -> Optional[bytes]:
    """Read one request head (and a Content-Length body) from the proxy."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    up.received += head
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            body = await reader.readexactly(int(line.split(b":")[1]))
            up.received += body
    return head


def replying(reply: bytes):
    """A scripted-upstream handler that answers every request on its keep-alive
    connection with ``reply``, the raw bytes of a whole response (or of several)."""
    async def handler(up: ScriptedUpstream, reader, writer) -> None:
        while await read_request(up, reader) is not None:
            writer.write(reply)
            await writer.drain()

    return handler


ok_handler = replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest.fixture
def upstream(loop_thread: LoopThread):
    """``upstream(handler=ok_handler)`` starts a scripted upstream."""
    made: list[ScriptedUpstream] = []

    def make(handler=ok_handler) -> ScriptedUpstream:
        up = ScriptedUpstream(loop_thread, handler).start()
        made.append(up)
        return up

    yield make
    for up in made:
        up.stop()


def raw_exchange(port: int, data: bytes, timeout: float = 5.0, until_close: bool = True) -> bytes:
    """Send ``data`` on a new connection and return what comes back until the
    server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = bytearray()
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if not until_close and b"\r\n\r\n" in out:
                    break
        except socket.timeout:
            pass
        return bytes(out)


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response with a Content-Length body from a raw socket: (head, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {buf!r}"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    assert len(body) == length
    return head, body


def dead_port() -> int:
    """A loopback port that was just free: nothing listens, a connect is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_forwarder(upstream: tuple, *args: str) -> tuple[int, subprocess.Popen]:
    """``run_forwarder.py`` on a free port in front of ``upstream`` (host, port), with
    ``args`` (e.g. ``-c conf``); returns once it accepts connections. The caller
    ends the process."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "run_forwarder.py"), str(port),
                             f"{upstream[0]}:{upstream[1]}", *args])
    try:
        wait_port(port)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return port, proc
