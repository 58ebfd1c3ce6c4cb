"""The HTTP health check: a real HTTP/1.1 request, judged by status or a validator.

The request goes out through Propylon's own HTTP/1 client
(:class:`~propylon.protocols.http.v1.client.H1ClientConnection`), the codec the
proxy speaks to origins with, so framing, keep-alive and malformed responses are
judged exactly as the proxy would judge them. Every step is bounded: the connect
by ``connection_timeout``, and the whole response (header and body) by
``read_timeout`` counted from when the request was written, so a backend that
accepts and then freezes costs one ``read_timeout`` and never stalls the loop.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Callable, Optional

from ..errors import Error, ErrorType
from ..protocols.http.header import RequestHeader, ResponseHeader
from ..protocols.http.v1.client import H1ClientConnection
from .backend import Backend
from .health import HealthCallback, HealthCheck, connect_backend

__all__ = ["HttpHealthCheck"]

#: Largest response body a check reads (bigger bodies fail the check).
MAX_BODY_SIZE = 1 << 20

Validator = Callable[[int, dict, bytes], Any]


def _header_dict(resp: ResponseHeader) -> dict[str, str]:
    """The response's fields by lower-case name; repeated fields joined with ", "."""
    fields: dict[str, str] = {}
    for name, value in resp.headers.items():
        key = name.lower()
        old = fields.get(key)
        fields[key] = value if old is None else f"{old}, {value}"
    return fields


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
    dict with lower-case names (the end-to-end fields: hop-by-hop ones such as
    ``Connection`` describe the probe's connection and are left out, as the proxy
    leaves them out), ``body`` the whole body (at most 1 MiB). It fails the
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
        self._idle: dict[int, H1ClientConnection] = {}

    def backend_summary(self, backend: Backend) -> str:
        """``backend_summary_callback(backend)`` if set, else the backend's repr."""
        cb = self.backend_summary_callback
        return cb(backend) if cb is not None else repr(backend)

    def _request(self) -> RequestHeader:
        # Built per check: sending a head may adjust it (its version, its framing).
        req = RequestHeader.build(b"GET", self.path)
        req.append_header(b"Host", self.host)
        for name, value in self.headers:
            req.append_header(name, value)
        req.append_header(b"Connection", b"keep-alive" if self.reuse_connection else b"close")
        return req

    async def check(self, backend: Backend) -> None:
        """Send the request and judge the response; raise :class:`~propylon.errors.Error`
        (``ConnectRefused``, ``ReadTimedout``, ``non 200 code`` ...) on failure."""
        pooled = self._idle.pop(backend.hash_key, None) if self.reuse_connection else None
        if pooled is not None and pooled.reusable():
            pooled.idle = False
            try:
                result = await self._exchange(backend, pooled)
            except Error as e:
                if e.etype != ErrorType.CONNECTION_CLOSED:
                    raise
                # The idle connection was closed by the backend: try a fresh one.
                result = await self._fresh_exchange(backend)
        else:
            if pooled is not None:
                pooled.close()
            result = await self._fresh_exchange(backend)
        self._judge(*result)

    async def _fresh_exchange(self, backend: Backend) -> tuple[int, dict, bytes]:
        _, conn = await connect_backend(
            backend,
            self.connection_timeout,
            H1ClientConnection,
            port=self.port_override,
            ssl_context=self.ssl_context if self.tls else None,
            server_hostname=self.host,
        )
        return await self._exchange(backend, conn)

    async def _exchange(self, backend: Backend, conn: H1ClientConnection) -> tuple[int, dict, bytes]:
        """One request on ``conn``; the connection is kept for the next check when
        ``reuse_connection`` is set and both sides allow it, else closed."""
        body: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.read_timeout):
                conn.send_request_header(self._request(), has_body=False, body_length_known=True)
                resp = await conn.read_response_header()
                while 100 <= resp.status < 200 and resp.status != 101:
                    resp = await conn.read_response_header()  # interim heads (100, 103)
                while (data := await conn.read_body()) is not None:
                    size += len(data)
                    if size > self.max_body_size:
                        raise Error.explain(
                            ErrorType.READ_ERROR,
                            f"health check response from {backend.addr} exceeds {self.max_body_size} bytes",
                        ).into_up()
                    body.append(data)
        except TimeoutError:
            conn.close()
            raise Error.explain(
                ErrorType.READ_TIMEDOUT,
                f"no complete response from {backend.addr} within {self.read_timeout}s",
            ).into_up() from None
        except BaseException:
            conn.close()
            raise
        if self.reuse_connection and conn.reusable():
            conn.idle = True  # any byte or EOF from the backend now makes it unusable
            self._idle[backend.hash_key] = conn
        else:
            conn.close()
        return resp.status, _header_dict(resp), b"".join(body)

    def _judge(self, status: int, headers: dict, body: bytes) -> None:
        validator = self.validator
        if validator is not None:
            if validator(status, headers, body) is False:
                raise Error.explain(
                    ErrorType.custom("HealthCheckValidationFailed"), "validator rejected the response"
                ).into_up()
        elif status != 200:
            raise Error.explain(
                ErrorType.custom_code("non 200 code", status), "during http healthcheck"
            ).into_up()

    def close(self) -> None:
        """Close idle connections kept by ``reuse_connection``."""
        idle, self._idle = self._idle, {}
        for conn in idle.values():
            conn.close()
