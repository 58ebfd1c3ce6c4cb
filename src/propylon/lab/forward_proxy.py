"""A forward proxy that accepts ``CONNECT host:port`` and tunnels bytes both ways.

It stands in for a corporate proxy (Squid and the like) in the tunnelling lesson.
Only loopback targets are allowed: IPs in 127.0.0.0/8 or ``::1``, ``localhost``, and
lab names under ``.propylon.test`` (which mean 127.0.0.1). Anything else gets
``403 Forbidden``; a target that refuses the connection gets ``502 Bad Gateway``;
a method other than CONNECT gets ``405``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Optional

from ._base import Endpoint, Member, MemberConfig
from ._http1 import close_writer

__all__ = ["ForwardProxyMember", "resolve_loopback"]

log = logging.getLogger(__name__)

_HEAD_LIMIT = 16 * 1024


def resolve_loopback(host: str) -> Optional[str]:
    """The loopback IP to use for ``host``, or None when ``host`` is not allowed."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host == "propylon.test" or host.endswith(".propylon.test"):
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return str(ip) if ip.is_loopback else None


def _split_authority(authority: str) -> tuple[str, int]:
    host, sep, port = authority.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(authority)
    return host, int(port)


class ForwardProxyMember(Member):
    """CONNECT proxy on 127.0.0.1:13128."""

    name = "forward-proxy"
    default_port = 13128

    def __init__(self, config: MemberConfig) -> None:
        super().__init__(config)
        self._server: Optional[asyncio.AbstractServer] = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.tunnels = 0

    async def start(self) -> list[Endpoint]:
        port = self.config.port(0, self.default_port)
        self._server = await asyncio.start_server(self._on_connection, self.config.host, port)
        bound = self._server.sockets[0].getsockname()[1]
        self.endpoints = [Endpoint(self.name, "connect", self.config.host, bound)]
        return self.endpoints

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            close_writer(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _HEAD_LIMIT:
            return await _reply(writer, 431, "Request Header Fields Too Large")
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3:
            return await _reply(writer, 400, "Bad Request")
        method, authority, _version = parts
        if method != "CONNECT":
            return await _reply(writer, 405, "Method Not Allowed", [("Allow", "CONNECT")])
        try:
            host, port = _split_authority(authority)
        except ValueError:
            return await _reply(writer, 400, "Bad Request")
        ip = resolve_loopback(host)
        if ip is None:
            log.info("refusing CONNECT to %s (not loopback)", authority)
            return await _reply(writer, 403, "Forbidden")
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 5)
        except (OSError, asyncio.TimeoutError):
            return await _reply(writer, 502, "Bad Gateway")
        self.tunnels += 1
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            close_writer(up_writer)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close ``dst`` so the other side sees the end too."""
    try:
        while True:
            data = await src.read(65536)
            if not data:
                break
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        close_writer(dst)


async def _reply(writer: asyncio.StreamWriter, status: int, phrase: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
    lines = [f"HTTP/1.1 {status} {phrase}"] + [f"{k}: {v}" for k, v in headers or []]
    lines += ["Content-Length: 0", "Connection: close"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
