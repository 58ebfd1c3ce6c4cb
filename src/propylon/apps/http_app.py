"""HTTP server apps: listening apps that answer HTTP requests themselves.

:class:`HttpServerApp` owns the HTTP plumbing of a listening app: one HTTP/1
connection object per accepted socket (HTTP/2 too, by ALPN on TLS endpoints whose
settings enable it, or with prior knowledge when ``h2c`` is set), the set of
connections being served, and closing idle ones when shutdown begins. Subclasses
say what to do with each request, seen through the version-neutral
:class:`~propylon.protocols.http.interfaces.DownstreamSession`.

:class:`ServeHttp` is the simplest form (Pingora's ``ServeHttp``): return a
response head and a body, and the app frames and writes them.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import TYPE_CHECKING, Callable, Optional

from ..protocols.http.header import ResponseHeader
from ..protocols.http.interfaces import DownstreamSession
from ..protocols.http.v1.server import H1ServerConnection, HttpServerOptions
from ..shutdown import ShutdownWatch
from .base import ListeningApp

if TYPE_CHECKING:
    from ..protocols.http.v2.options import H2Options

__all__ = ["HttpServerApp", "HttpServerOptions", "ServeHttp"]

# How often wait_drained looks for connections that became idle.
_DRAIN_POLL = 0.05


class HttpServerApp(ListeningApp):
    """A listening app that serves HTTP requests with :meth:`process_new_http`.

    ``server_options`` sets the downstream limits and timeouts (and ``h2c``);
    ``h2_options`` the HTTP/2 ones (streams, windows, flood limits), by default
    derived from ``server_options``.
    """

    scheme = "http"  #: shown in the service's "listening on" lines

    def __init__(self, server_options: Optional[HttpServerOptions] = None,
                 h2_options: Optional["H2Options"] = None) -> None:
        self.server_options = server_options or HttpServerOptions()
        self.h2_options = h2_options
        self._connections: set = set()

    def open_connections(self) -> int:
        """Client connections this app serves right now (in this process)."""
        return len(self._connections)

    @abstractmethod
    async def process_new_http(self, session: DownstreamSession) -> bool:
        """Serve one request; return True if the connection may carry another
        (``session.keepalive`` once the response is finished)."""

    def protocol_factory(self, shutdown: ShutdownWatch) -> Callable[[], asyncio.BaseProtocol]:
        handle = self.process_new_http
        opts = self.server_options
        h2_opts = self.h2_options if self.h2_options is not None else opts
        conns = self._connections
        shutdown.on_shutdown(self.close_idle)

        def h2() -> asyncio.Protocol:
            # Imported on first use: most HTTP apps never see HTTP/2.
            from ..protocols.http.v2.server import H2ServerConnection

            return H2ServerConnection(handle, shutdown, h2_opts, conns)

        return lambda: H1ServerConnection(handle, shutdown, opts, conns, h2)

    def close_idle(self) -> None:
        """Close every connection that is not serving a request right now."""
        for conn in list(self._connections):
            conn.close_if_idle()

    async def wait_drained(self) -> None:
        # A connection busy with a request becomes idle when its response ends.
        while self._connections:
            self.close_idle()
            await asyncio.sleep(_DRAIN_POLL)


class ServeHttp(HttpServerApp):
    """An HTTP app whose every answer is a whole response built in memory.

    Define :meth:`response`; the app adds ``Content-Length`` when the head has none,
    leaves the body out for HEAD requests and keeps the connection alive when the
    client allows it.
    """

    @abstractmethod
    async def response(self, session: DownstreamSession) -> tuple[ResponseHeader, bytes]:
        """The response to ``session.req``: its head and its whole body."""

    async def process_new_http(self, session: DownstreamSession) -> bool:
        resp, body = await self.response(session)
        if resp.headers.get_bytes(b"content-length") is None:
            resp.insert_header(b"Content-Length", str(len(body)))
        if session.is_head or not body:
            session.write_header(resp, end_of_stream=True)
        else:
            session.write_header(resp)
            session.write_body(body)
            session.finish()
        await session.drain()
        return session.keepalive
