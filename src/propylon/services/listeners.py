"""Listening endpoints: what to bind (TCP address or Unix path), and binding it.

A :class:`Listener` is a description; the server binds it once (before forking the
workers) or receives an already bound socket from the process it replaces during a
graceful upgrade. Sockets are matched to listeners by :attr:`Listener.key`, the bind
string as the user wrote it (``"127.0.0.1:6142"``, ``"/tmp/app.sock"``).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import stat
from dataclasses import dataclass
from typing import Optional

__all__ = ["TcpSocketOptions", "Listener", "parse_tcp_addr", "DEFAULT_BACKLOG"]

log = logging.getLogger(__name__)

DEFAULT_BACKLOG = 1024


@dataclass
class TcpSocketOptions:
    """Options for a TCP listening socket (all off by default).

    * ``ipv6_only`` – for ``[::]`` addresses: True accepts IPv6 only, False also
      IPv4-mapped connections, None leaves the system default.
    * ``so_reuseport`` – set ``SO_REUSEPORT`` (the server sets it itself when
      ``work_stealing`` is False).
    * ``tcp_fastopen`` – queue length for TCP Fast Open, None = off.
    * ``backlog`` – accept queue length (default 1024).
    """

    ipv6_only: Optional[bool] = None
    so_reuseport: bool = False
    tcp_fastopen: Optional[int] = None
    backlog: int = DEFAULT_BACKLOG


def parse_tcp_addr(addr: str) -> tuple[str, int]:
    """Split ``"host:port"`` or ``"[v6]:port"`` into ``(host, port)``; ValueError if malformed."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bad listening address {addr!r}: expected host:port or [v6]:port")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"bad listening address {addr!r}: unclosed '['")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"bad listening address {addr!r}: write IPv6 addresses as [addr]:port")
    p = int(port)
    if p > 65535:
        raise ValueError(f"bad listening address {addr!r}: port out of range")
    return host, p


@dataclass
class Listener:
    """One endpoint of a service: a TCP address or a Unix socket path, plus TLS if any.

    ``ssl_context`` makes accepted connections TLS (the handshake is done before
    the app sees the connection). ``perms`` is the file mode of a Unix socket.
    """

    key: str
    kind: str  # "tcp" or "uds"
    host: str = ""
    port: int = 0
    path: str = ""
    perms: Optional[int] = None
    options: Optional[TcpSocketOptions] = None
    ssl_context: Optional[ssl.SSLContext] = None

    @classmethod
    def tcp(cls, addr: str, options: Optional[TcpSocketOptions] = None,
            ssl_context: Optional[ssl.SSLContext] = None) -> "Listener":
        """A TCP endpoint from ``"host:port"`` / ``"[v6]:port"`` (ValueError if malformed)."""
        host, port = parse_tcp_addr(addr)
        return cls(addr, "tcp", host=host, port=port, options=options, ssl_context=ssl_context)

    @classmethod
    def uds(cls, path: str, perms: Optional[int] = None,
            ssl_context: Optional[ssl.SSLContext] = None) -> "Listener":
        """A Unix socket endpoint at ``path``; ``perms`` is its file mode (None: umask)."""
        return cls(path, "uds", path=path, perms=perms, ssl_context=ssl_context)

    @property
    def backlog(self) -> int:
        """Accept queue length (``options.backlog``, default 1024)."""
        return self.options.backlog if self.options else DEFAULT_BACKLOG

    def bind(self, *, reuseport: bool = False, port: Optional[int] = None) -> socket.socket:
        """Create, bind and listen. ``port`` overrides the configured one (used to
        put several ``SO_REUSEPORT`` sockets on the port the first one got for port 0)."""
        if self.kind == "uds":
            return self._bind_uds()
        return self._bind_tcp(reuseport, self.port if port is None else port)

    def _bind_tcp(self, reuseport: bool, port: int) -> socket.socket:
        infos = socket.getaddrinfo(self.host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                   0, socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            opts = self.options or TcpSocketOptions()
            if reuseport or opts.so_reuseport:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and opts.ipv6_only is not None:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(opts.ipv6_only))
            if opts.tcp_fastopen:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, opts.tcp_fastopen)
            sock.bind(sockaddr)
            sock.listen(opts.backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _bind_uds(self) -> socket.socket:
        # A socket file left behind by a previous run would make bind fail.
        try:
            if stat.S_ISSOCK(os.stat(self.path).st_mode):
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            if self.perms is not None:
                os.chmod(self.path, self.perms)
            sock.listen(self.backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock


def describe_socket(sock: socket.socket) -> str:
    """The address a listening socket is bound to, as ``host:port`` or a path."""
    name = sock.getsockname()
    if isinstance(name, tuple):
        host = name[0]
        return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"
    return name if isinstance(name, str) else os.fsdecode(name)
