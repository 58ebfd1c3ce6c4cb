"""Health checks: the contract, the per-backend health state, and the TCP check.

A health check is any object with ``async check(backend)`` (returns on success,
raises :class:`~propylon.errors.Error` on failure) and ``health_threshold(success)``
(how many consecutive opposite results flip the state). Optional:
``health_status_change(backend, healthy)`` (sync or async, called on a flip) and
``backend_summary(backend)`` (the text used in the flip log line). Subclassing
:class:`HealthCheck` gives the defaults.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Awaitable, Callable, Optional, Union

from ..errors import Error, ErrorType
from .backend import Backend

__all__ = ["HealthCheck", "TcpHealthCheck", "Health", "connect_backend"]

HealthCallback = Callable[[Backend, bool], Union[None, Awaitable[None]]]


class Health:
    """The health of one backend: ``healthy``, ``enabled``, the flip counter and the
    error of the most recent check (``None`` if it passed or none ran yet).

    New backends start healthy and enabled, as in Pingora.
    """

    __slots__ = ("healthy", "enabled", "counter", "last_error")

    def __init__(self, healthy: bool = True, enabled: bool = True) -> None:
        self.healthy = healthy
        self.enabled = enabled
        self.counter = 0
        self.last_error: Optional[BaseException] = None

    def ready(self) -> bool:
        """Healthy and enabled."""
        return self.healthy and self.enabled

    def observe(self, success: bool, threshold: int) -> bool:
        """Record one check result; return True when it flips the state.

        An observation opposite to the current state bumps the counter and flips
        (resetting the counter) once it reaches ``threshold``; an observation that
        agrees with the current state resets the counter.
        """
        if self.healthy != success:
            self.counter += 1
            if self.counter >= threshold:
                self.healthy = success
                self.counter = 0
                return True
        else:
            self.counter = 0
        return False


class HealthCheck:
    """Base class for health checks; override :meth:`check`.

    ``consecutive_success`` / ``consecutive_failure`` (default 1 each) are what the
    default :meth:`health_threshold` returns; ``health_changed_callback`` (default
    ``None``), if set, is called with ``(backend, healthy)`` on every flip.
    """

    consecutive_success: int = 1
    consecutive_failure: int = 1
    health_changed_callback: Optional[HealthCallback] = None

    async def check(self, backend: Backend) -> None:
        """Probe ``backend``; raise :class:`~propylon.errors.Error` if it is unhealthy."""
        raise NotImplementedError

    def health_threshold(self, success: bool) -> int:
        """Consecutive results needed to flip: to healthy if ``success`` else to unhealthy."""
        return self.consecutive_success if success else self.consecutive_failure

    async def health_status_change(self, backend: Backend, healthy: bool) -> None:
        """Called when ``backend``'s health flips; runs ``health_changed_callback``."""
        cb = self.health_changed_callback
        if cb is not None:
            result = cb(backend, healthy)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result

    def backend_summary(self, backend: Backend) -> str:
        """How ``backend`` is named in the flip log lines (default: its repr)."""
        return repr(backend)


def _connect_error(exc: BaseException, backend: Backend, tls: bool) -> Error:
    where = f"while connecting to {backend.addr}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        # One deadline covers connect and handshake, so call it a connect timeout.
        etype = ErrorType.CONNECT_TIMEDOUT
    elif isinstance(exc, ssl.SSLCertVerificationError):
        etype = ErrorType.INVALID_CERT
    elif isinstance(exc, ssl.SSLError):
        etype = ErrorType.TLS_HANDSHAKE_FAILURE
    elif isinstance(exc, ConnectionRefusedError):
        etype = ErrorType.CONNECT_REFUSED
    elif isinstance(exc, (FileNotFoundError,)):
        etype = ErrorType.CONNECT_REFUSED
    elif isinstance(exc, OSError) and exc.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
        etype = ErrorType.CONNECT_NO_ROUTE
    else:
        etype = ErrorType.CONNECT_ERROR
    return Error.because(etype, where, exc).into_up()


async def connect_backend(
    backend: Backend,
    timeout: Optional[float],
    protocol_factory: Callable[[], asyncio.BaseProtocol] = asyncio.Protocol,
    *,
    port: Optional[int] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    server_hostname: Optional[str] = None,
) -> tuple[asyncio.BaseTransport, Any]:
    """Connect to ``backend`` (TCP or Unix socket, optionally TLS) within ``timeout``
    seconds (``None``: no limit); return the transport and the protocol
    ``protocol_factory`` made for it. ``port`` overrides the backend's port.

    Raises :class:`~propylon.errors.Error` (``ConnectTimedout``, ``ConnectRefused``,
    ``TLSHandshakeFailure``, ``InvalidCert`` ...) tagged as an upstream error.
    """
    tls = ssl_context is not None
    hostname = (server_hostname or None) if tls else None
    loop = asyncio.get_running_loop()
    try:
        if backend.port is None:
            coro = loop.create_unix_connection(protocol_factory, backend.host, ssl=ssl_context,
                                               server_hostname=hostname)
        else:
            coro = loop.create_connection(protocol_factory, backend.host,
                                          port if port is not None else backend.port,
                                          ssl=ssl_context, server_hostname=hostname)
        return await asyncio.wait_for(coro, timeout)
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
        raise _connect_error(e, backend, tls) from None


class TcpHealthCheck(HealthCheck):
    """Healthy when a TCP (or Unix-socket) connection, and a TLS handshake if
    configured, completes within ``connection_timeout`` (default 1 s).

    ``consecutive_success`` / ``consecutive_failure`` default to 1. Use
    :meth:`new_tls` for the TLS variant; the connection is closed right away.
    """

    def __init__(
        self,
        *,
        connection_timeout: Optional[float] = 1.0,
        consecutive_success: int = 1,
        consecutive_failure: int = 1,
        ssl_context: Optional[ssl.SSLContext] = None,
        sni: Optional[str] = None,
        health_changed_callback: Optional[HealthCallback] = None,
    ) -> None:
        self.connection_timeout = connection_timeout
        self.consecutive_success = consecutive_success
        self.consecutive_failure = consecutive_failure
        self.ssl_context = ssl_context
        self.sni = sni
        self.health_changed_callback = health_changed_callback

    @classmethod
    def new_tls(cls, sni: str, ssl_context: Optional[ssl.SSLContext] = None, **kwargs: Any) -> "TcpHealthCheck":
        """A check that also completes a TLS handshake presenting ``sni``.

        ``ssl_context`` defaults to the system's verifying client context.
        """
        ctx = ssl_context if ssl_context is not None else ssl.create_default_context()
        return cls(ssl_context=ctx, sni=sni, **kwargs)

    async def check(self, backend: Backend) -> None:
        """Connect (and handshake); raise :class:`~propylon.errors.Error` on failure."""
        transport, _ = await connect_backend(
            backend, self.connection_timeout, ssl_context=self.ssl_context, server_hostname=self.sni
        )
        transport.close()
