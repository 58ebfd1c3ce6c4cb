"""The HTTP health check: a real HTTP/1.1 request, judged by status or a validator.

It carries its own small client (asyncio streams + ``httptools``) so that ``lb``
does not depend on the proxy's connectors. Every step is bounded: the connect by
``connection_timeout``, and the whole response (header and body) by
``read_timeout`` counted from when the request was written, so a backend that
accepts and then freezes costs one ``read_timeout`` and never stalls the loop.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Callable, Optional

import httptools

from ..errors import Error, ErrorType
from .backend import Backend
from .health import HealthCallback, HealthCheck, open_backend_connection

__all__ = ["HttpHealthCheck", "HttpCheckResponse"]

#: Largest response body a check reads (bigger bodies fail the check).
MAX_BODY_SIZE = 1 << 20
_READ_CHUNK = 65536

Validator = Callable[[int, dict, bytes], Any]


class HttpCheckResponse:
    """What the parser collected: status, headers (lower-case names) and body."""

    __slots__ = ("status", "headers", "body", "_chunks", "_size", "_limit", "complete",
                 "headers_done", "keep_alive", "framed", "too_big")

    def __init__(self, limit: int) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit = limit
        self.complete = False
        self.headers_done = False
        self.keep_alive = False
        self.framed = False  # Content-Length or chunked: EOF before the end is an error
        self.too_big = False

    # httptools parser callbacks, called while feeding data; no docstrings needed
    # beyond this: they collect the message.
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"
        if key == "content-length" or (key == "transfer-encoding" and "chunked" in text.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self.too_big = True
            return
        self._chunks.append(data)

    def on_message_complete(self) -> None:
        self.complete = True
        self.body = b"".join(self._chunks)


def _keeps_alive(parser: httptools.HttpResponseParser, resp: HttpCheckResponse) -> bool:
    # Decided from the message itself: the parser's own flag is reset once the
    # message completes.
    connection = resp.headers.get("connection", "").lower()
    if parser.get_http_version() == "1.1":
        return "close" not in connection
    return "keep-alive" in connection


class HttpHealthCheck(HealthCheck):
    """Healthy when ``GET path`` with ``Host: host`` answers 200 (or passes ``validator``).

    Defaults: ``path="/"``, ``connection_timeout=1.0`` and ``read_timeout=1.0``
    seconds, ``consecutive_success=consecutive_failure=1``, ``reuse_connection=False``
    (a fresh TCP/TLS connection per check, which also exercises handshakes),
    ``port_override=None`` (probe another port of the backend's host),
    ``headers=()`` (extra request headers as ``(name, value)`` pairs). With
    ``tls=True`` the check speaks HTTPS with SNI ``host`` using ``ssl_context``
    (default: the system's verifying client context).

    ``validator(status, headers, body)`` replaces the status rule: ``headers`` is a
    dict with lower-case names, ``body`` the whole body (at most 1 MiB). It fails the
    check by raising :class:`~propylon.errors.Error` or returning ``False``. Without
    a validator a status other than 200 fails with
    ``ErrorType.custom_code("non 200 code", status)``.
    """

    def __init__(
        self,
        host: str,
        tls: bool = False,
        *,
        path: str = "/",
        connection_timeout: Optional[float] = 1.0,
        read_timeout: Optional[float] = 1.0,
        consecutive_success: int = 1,
        consecutive_failure: int = 1,
        validator: Optional[Validator] = None,
        port_override: Optional[int] = None,
        reuse_connection: bool = False,
        headers: tuple = (),
        ssl_context: Optional[ssl.SSLContext] = None,
        health_changed_callback: Optional[HealthCallback] = None,
        backend_summary_callback: Optional[Callable[[Backend], str]] = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.path = path
        self.connection_timeout = connection_timeout
        self.read_timeout = read_timeout
        self.consecutive_success = consecutive_success
        self.consecutive_failure = consecutive_failure
        self.validator = validator
        self.port_override = port_override
        self.reuse_connection = reuse_connection
        self.headers = tuple(headers)
        if ssl_context is None and tls:
            ssl_context = ssl.create_default_context()
        self.ssl_context = ssl_context
        self.health_changed_callback = health_changed_callback
        self.backend_summary_callback = backend_summary_callback
        self.max_body_size = MAX_BODY_SIZE
        # Idle kept-alive connections per backend, only used with reuse_connection.
        self._idle: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    def backend_summary(self, backend: Backend) -> str:
        """``backend_summary_callback(backend)`` if set, else the backend's repr."""
        cb = self.backend_summary_callback
        return cb(backend) if cb is not None else repr(backend)

    def _request_bytes(self) -> bytes:
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}"]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        lines.append("Connection: keep-alive" if self.reuse_connection else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def check(self, backend: Backend) -> None:
        """Send the request and judge the response; raise :class:`~propylon.errors.Error`
        (``ConnectRefused``, ``ReadTimedout``, ``non 200 code`` ...) on failure."""
        request = self._request_bytes()
        pooled = self._idle.pop(backend.hash_key, None) if self.reuse_connection else None
        if pooled is not None and not pooled[1].is_closing() and not pooled[0].at_eof():
            try:
                resp = await self._exchange(backend, *pooled, request)
            except Error as e:
                pooled[1].close()
                if e.etype != ErrorType.CONNECTION_CLOSED:
                    raise
                # The idle connection was closed by the backend: try a fresh one.
                resp = await self._fresh_exchange(backend, request)
        else:
            if pooled is not None:
                pooled[1].close()
            resp = await self._fresh_exchange(backend, request)
        self._judge(resp)

    async def _fresh_exchange(self, backend: Backend, request: bytes) -> HttpCheckResponse:
        reader, writer = await open_backend_connection(
            backend,
            self.connection_timeout,
            port=self.port_override,
            ssl_context=self.ssl_context if self.tls else None,
            server_hostname=self.host,
        )
        try:
            return await self._exchange(backend, reader, writer, request)
        except BaseException:
            writer.close()
            raise

    async def _exchange(
        self,
        backend: Backend,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: bytes,
    ) -> HttpCheckResponse:
        resp = HttpCheckResponse(self.max_body_size)
        parser = httptools.HttpResponseParser(resp)
        try:
            async with asyncio.timeout(self.read_timeout):
                writer.write(request)
                await writer.drain()
                while not resp.complete:
                    data = await reader.read(_READ_CHUNK)
                    if not data:
                        if resp.headers_done and not resp.framed:
                            resp.on_message_complete()  # close-delimited body ended
                            break
                        raise Error.explain(
                            ErrorType.CONNECTION_CLOSED,
                            f"{backend.addr} closed the connection before the response ended",
                        ).into_up()
                    parser.feed_data(data)
                    if resp.too_big:
                        raise Error.explain(
                            ErrorType.READ_ERROR,
                            f"health check response from {backend.addr} exceeds {self.max_body_size} bytes",
                        ).into_up()
        except TimeoutError:
            raise Error.explain(
                ErrorType.READ_TIMEDOUT,
                f"no complete response from {backend.addr} within {self.read_timeout}s",
            ).into_up() from None
        except httptools.HttpParserError as e:
            raise Error.because(ErrorType.H1_ERROR, f"invalid response from {backend.addr}", e).into_up() from None
        except OSError as e:
            raise Error.because(ErrorType.READ_ERROR, f"while talking to {backend.addr}", e).into_up() from None
        resp.status = parser.get_status_code()
        if self.reuse_connection and resp.framed and _keeps_alive(parser, resp):
            self._idle[backend.hash_key] = (reader, writer)
        else:
            writer.close()
        return resp

    def _judge(self, resp: HttpCheckResponse) -> None:
        validator = self.validator
        if validator is not None:
            if validator(resp.status, resp.headers, resp.body) is False:
                raise Error.explain(
                    ErrorType.custom("HealthCheckValidationFailed"), "validator rejected the response"
                ).into_up()
        elif resp.status != 200:
            raise Error.explain(
                ErrorType.custom_code("non 200 code", resp.status), "during http healthcheck"
            ).into_up()

    def close(self) -> None:
        """Close idle connections kept by ``reuse_connection``."""
        idle, self._idle = self._idle, {}
        for _, writer in idle.values():
            writer.close()
