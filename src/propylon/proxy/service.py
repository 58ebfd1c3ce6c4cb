"""Serving a ``ProxyHttp`` on listening sockets: the app and ``http_proxy_service``."""

from __future__ import annotations

import asyncio
from typing import Callable, Optional

from ..apps.base import ListeningApp
from ..protocols.http.compression import CompressionOptions
from ..protocols.http.v1.server import H1ServerConnection, HttpServerOptions
from ..server.shutdown import ShutdownWatch
from .engine import HttpProxyEngine
from .proxy_trait import ProxyHttp

__all__ = ["HttpProxyApp", "http_proxy_service"]


class HttpProxyApp(ListeningApp):
    """Runs a ``ProxyHttp`` on every accepted connection.

    The engine (and its connection pool) is made in the worker process that
    serves, on first use, so each process has its own pool.
    """

    def __init__(self, proxy: ProxyHttp, conf=None, server_options: Optional[HttpServerOptions] = None,
                 compression: Optional[CompressionOptions] = None) -> None:
        if compression is not None and not isinstance(compression, CompressionOptions):
            raise TypeError(f"compression must be CompressionOptions, got {type(compression).__name__}")
        if not isinstance(proxy, ProxyHttp):
            raise TypeError(f"http_proxy_service needs a ProxyHttp, got {type(proxy).__name__}")
        if type(proxy).upstream_peer is ProxyHttp.upstream_peer:
            raise TypeError(f"{type(proxy).__name__} must define upstream_peer()")
        self.proxy = proxy
        self.conf = conf
        self.server_options = server_options or HttpServerOptions()
        self.compression = compression
        self._engine: Optional[HttpProxyEngine] = None
        self._connections: set[H1ServerConnection] = set()
        self._drained: Optional[asyncio.Event] = None

    @property
    def engine(self) -> HttpProxyEngine:
        if self._engine is None:
            c = self.conf
            self._engine = HttpProxyEngine(
                self.proxy,
                max_retries=getattr(c, "max_retries", 16),
                pool_size=getattr(c, "upstream_keepalive_pool_size", 128),
                ca_file=getattr(c, "ca_file", None),
                bind_to_v4=tuple(getattr(c, "client_bind_to_ipv4", ()) or ()),
                bind_to_v6=tuple(getattr(c, "client_bind_to_ipv6", ()) or ()),
                compression=self.compression,
            )
        return self._engine

    def protocol_factory(self, shutdown: ShutdownWatch) -> Callable[[], asyncio.BaseProtocol]:
        handle = self.engine.handle
        opts = self.server_options
        conns = self._connections
        shutdown.on_shutdown(self._on_shutdown)

        def h2() -> asyncio.Protocol:
            from ..protocols.http.v2.server import H2ServerConnection

            return H2ServerConnection(handle, shutdown, opts, conns)

        return lambda: H1ServerConnection(handle, shutdown, opts, conns, h2)

    def _on_shutdown(self) -> None:
        for conn in list(self._connections):
            conn.close_if_idle()

    async def wait_drained(self) -> None:
        while self._connections:
            for conn in list(self._connections):
                conn.close_if_idle()
            await asyncio.sleep(0.05)
        if self._engine is not None:
            self._engine.connector.close()


def http_proxy_service(conf, proxy: ProxyHttp, name: str = "Propylon HTTP Proxy Service",
                       server_options: Optional[HttpServerOptions] = None,
                       compression: Optional[CompressionOptions] = None):
    """A listening service that proxies HTTP with ``proxy``; add endpoints with
    ``add_tcp``/``add_uds`` and hand it to ``Server.add_service``.

    ``compression`` compresses responses for clients that accept it (and may decode
    the origin's); hooks adjust it per request through ``session.adjust_compression``."""
    from ..services.listening import Service

    return Service(name, HttpProxyApp(proxy, conf, server_options, compression))
