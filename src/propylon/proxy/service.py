"""Serving a ``ProxyHttp`` on listening sockets: the app and ``http_proxy_service``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable, Optional

from ..apps.http_app import HttpServerApp, HttpServerOptions
from ..protocols.http.compression import CompressionOptions
from ..protocols.http.interfaces import DownstreamSession
from ..shutdown import ShutdownWatch
from .engine import HttpProxyEngine
from .proxy_trait import ProxyHttp

if TYPE_CHECKING:
    from ..apps.http_app import H2Options

__all__ = ["HttpProxyApp", "http_proxy_service"]


class HttpProxyApp(HttpServerApp):
    """Runs a ``ProxyHttp`` on every accepted connection.

    The engine (and its connection pool) is made in the worker process that
    serves, on first use, so each process has its own pool.
    """

    def __init__(self, proxy: ProxyHttp, conf=None, server_options: Optional[HttpServerOptions] = None,
                 h2_options: Optional["H2Options"] = None,
                 compression: Optional[CompressionOptions] = None, observer=None) -> None:
        if compression is not None and not isinstance(compression, CompressionOptions):
            raise TypeError(f"compression must be CompressionOptions, got {type(compression).__name__}")
        if not isinstance(proxy, ProxyHttp):
            raise TypeError(f"http_proxy_service needs a ProxyHttp, got {type(proxy).__name__}")
        if type(proxy).upstream_peer is ProxyHttp.upstream_peer:
            raise TypeError(f"{type(proxy).__name__} must define upstream_peer()")
        super().__init__(server_options, h2_options)
        self.proxy = proxy
        self.conf = conf
        self.compression = compression
        self.observer = observer
        self._engine: Optional[HttpProxyEngine] = None

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
                observer=self.observer,
            )
            if self.observer is not None:
                self.observer.attach(self)
        return self._engine

    async def process_new_http(self, session: DownstreamSession) -> bool:
        return await self.engine.handle(session)

    def protocol_factory(self, shutdown: ShutdownWatch) -> Callable[[], asyncio.BaseProtocol]:
        # The engine's own handle, bound once: no extra coroutine per request.
        self.process_new_http = self.engine.handle  # type: ignore[method-assign]
        return super().protocol_factory(shutdown)

    async def wait_drained(self) -> None:
        await super().wait_drained()
        if self._engine is not None:
            self._engine.connector.close()
        if self.observer is not None:
            self.observer.close()


def http_proxy_service(conf, proxy: ProxyHttp, name: str = "Propylon HTTP Proxy Service",
                       server_options: Optional[HttpServerOptions] = None,
                       h2_options: Optional["H2Options"] = None,
                       compression: Optional[CompressionOptions] = None, observer=None):
    """A listening service that proxies HTTP with ``proxy``; add endpoints with
    ``add_tcp``/``add_uds`` and hand it to ``Server.add_service``.

    ``server_options`` holds the HTTP/1 limits; ``h2_options`` the HTTP/2 ones
    (streams, windows, flood limits: see ``propylon.H2Options``),
    by default nginx-like limits with the idle timeout and head size taken from
    ``server_options``. ``compression`` compresses responses for clients that
    accept it (and may decode the origin's); hooks adjust it per request through
    ``session.adjust_compression``. ``observer``: a
    :class:`propylon.metrics.Observability` for built-in metrics, access log,
    request ids and tracing (None: none of it, at no cost)."""
    from ..services.listening import Service

    return Service(name, HttpProxyApp(proxy, conf, server_options, h2_options, compression, observer))
