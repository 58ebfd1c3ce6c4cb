"""What every lab member is: something that binds endpoints, serves, and closes.

:class:`Member` is the contract; :class:`HttpMember` is the shared machinery of the
HTTP upstreams (plain, TLS with ALPN, h2c, or a Unix socket).
"""

from __future__ import annotations

import asyncio
import logging
import errno
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence

from ._h2 import serve_h2
from ._http1 import close_writer, serve_http1
from ._messages import Handler, TlsInfo
from .certs import LabCerts

log = logging.getLogger(__name__)

Scheme = Literal["http", "https", "h2c", "grpc", "grpcs", "ws", "connect", "tcp", "http+unix"]


@dataclass(frozen=True)
class Endpoint:
    """One listening address of a member.

    ``host``/``port`` for TCP, ``path`` for a Unix socket; ``scheme`` says what is
    spoken there (``http``, ``https``, ``h2c``, ``grpc``, ``grpcs``, ``ws``,
    ``connect``, ``tcp``, ``http+unix``).
    """

    member: str
    scheme: Scheme
    host: str = "127.0.0.1"
    port: int = 0
    path: Optional[str] = None

    @property
    def address(self) -> tuple[str, int] | str:
        """``(host, port)`` for TCP, the socket path for a Unix socket."""
        return self.path if self.path is not None else (self.host, self.port)

    @property
    def url(self) -> str:
        """A URL for the endpoint (for a Unix socket, the path is shown in ``http+unix://``)."""
        if self.path is not None:
            return f"http+unix://{self.path}"
        scheme = {"h2c": "http", "connect": "http", "tcp": "tcp"}.get(self.scheme, self.scheme)
        return f"{scheme}://{self.host}:{self.port}"

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form, as exchanged between the lab and its member processes."""
        return {"member": self.member, "scheme": self.scheme, "host": self.host,
                "port": self.port, "path": self.path}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "Endpoint":
        """Inverse of :meth:`as_dict`."""
        return cls(str(d["member"]), d["scheme"], str(d["host"]), int(d["port"]),  # type: ignore[arg-type]
                   None if d.get("path") is None else str(d["path"]))


@dataclass
class MemberConfig:
    """How to run a member: where the certificates are and where to listen.

    ``ports`` overrides the default ports one for one (0 = any free port);
    ``uds_path`` overrides the Unix socket path; ``sockets`` hands over already
    listening sockets (HTTP members use the first instead of binding).
    """

    certs: LabCerts
    ports: Optional[Sequence[int]] = None
    uds_path: Optional[str] = None
    host: str = "127.0.0.1"
    sockets: Optional[list[socket.socket]] = None

    def port(self, index: int, default: int) -> int:
        """The port to bind for the ``index``-th endpoint."""
        if self.ports is not None and index < len(self.ports):
            return self.ports[index]
        return default


class Member:
    """Base of the lab members. Subclasses bind in :meth:`start` and release in :meth:`close`."""

    name: str = ""

    def __init__(self, config: MemberConfig) -> None:
        self.config = config
        self.endpoints: list[Endpoint] = []

    async def start(self) -> list[Endpoint]:
        """Bind and start serving; return the endpoints actually bound."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        raise NotImplementedError


class HttpMember(Member):
    """An HTTP upstream: one listener speaking HTTP/1.1, h2c, or TLS with ALPN.

    ``mode`` is ``"http"`` (HTTP/1.1), ``"h2c"`` (HTTP/2 with prior knowledge) or
    ``"https"`` (TLS; ALPN picks h2 or http/1.1). ``client_certs`` asks TLS clients
    for a certificate from the lab CA (optional: the handler decides what to do
    without one, as nginx's ``ssl_verify_client on`` does).
    """

    mode: Literal["http", "h2c", "https"] = "http"
    default_port: int = 0
    uds: bool = False
    client_certs: bool = False

    def __init__(self, config: MemberConfig, handler: Handler) -> None:
        super().__init__(config)
        self.handler = handler
        self._server: Optional[asyncio.AbstractServer] = None
        self._conns: set[asyncio.Task[None]] = set()

    def ssl_context(self) -> ssl.SSLContext:
        """The server TLS context: upstream certificate, ALPN h2 + http/1.1, SNI recorded."""
        certs = self.config.certs
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs.upstream_cert, certs.upstream_key)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        if self.client_certs:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(certs.ca_cert)

        def remember_sni(sslobj: ssl.SSLObject, name: Optional[str], _ctx: ssl.SSLContext) -> None:
            sslobj._lab_sni = name  # type: ignore[attr-defined]

        ctx.sni_callback = remember_sni
        return ctx

    async def start(self) -> list[Endpoint]:
        if self.uds:
            path = self.config.uds_path or "/tmp/propylon-lab/upstream.sock"
            await asyncio.to_thread(_prepare_socket_path, path)
            self._server = await asyncio.start_unix_server(self._on_connection, path)
            self.endpoints = [Endpoint(self.name, "http+unix", path=path)]
            return self.endpoints
        ssl_ctx = self.ssl_context() if self.mode == "https" else None
        if self.config.sockets:
            self._server = await asyncio.start_server(self._on_connection, sock=self.config.sockets[0],
                                                      ssl=ssl_ctx)
        else:
            port = self.config.port(0, self.default_port)
            self._server = await asyncio.start_server(self._on_connection, self.config.host, port,
                                                      ssl=ssl_ctx, backlog=1024)
        bound = self._server.sockets[0].getsockname()[1]
        self.endpoints = [Endpoint(self.name, self.mode, self.config.host, bound)]
        return self.endpoints

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            tls = _tls_info(writer)
            if self.mode == "h2c" or (tls is not None and tls.alpn == "h2"):
                await serve_h2(reader, writer, self.handler, tls)
            else:
                await serve_http1(reader, writer, self.handler, tls)
        except asyncio.CancelledError:
            close_writer(writer)
            raise
        except Exception:  # a handler bug must not kill the member
            log.exception("%s: connection failed", self.name)
            close_writer(writer)
        finally:
            self._conns.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self.uds and self.endpoints and self.endpoints[0].path:
            try:
                os.unlink(self.endpoints[0].path)
            except FileNotFoundError:
                pass


def _tls_info(writer: asyncio.StreamWriter) -> Optional[TlsInfo]:
    sslobj = writer.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    subject = None
    cert = sslobj.getpeercert()
    if cert:
        subject = ",".join("=".join(pair) for rdn in cert.get("subject", ()) for pair in rdn)
    return TlsInfo(sni=getattr(sslobj, "_lab_sni", None), alpn=sslobj.selected_alpn_protocol(),
                   version=sslobj.version(), client_cert_subject=subject)


def _prepare_socket_path(path: str) -> None:
    """Make the socket's directory; remove a file left by a killed run, never one in use."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path}: address already in use")
