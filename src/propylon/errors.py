"""One error type for the whole framework.

Every failure Propylon reports is an :class:`Error`. It carries

* ``etype``   – *what* went wrong (:class:`ErrorType`, e.g. ``CONNECT_TIMEDOUT``),
* ``esource`` – *which side* caused it (:class:`ErrorSource`: upstream, downstream,
  internal, or not yet known),
* ``retry``   – whether the request may be tried again (:class:`RetryType`),
* ``cause``   – the underlying exception, if any,
* ``context`` – a short human sentence added where the error was noticed.

The source decides the default status of :meth:`ProxyHttp.fail_to_proxy`: 502 for
upstream errors, 400 (or nothing) for downstream ones, 500 for internal ones, and
the code itself for ``ErrorType.http_status(code)``.

Layers add context instead of inventing new exception classes::

    try:
        await connect()
    except OSError as e:
        raise Error.because(ErrorType.CONNECT_REFUSED, "while connecting to blue", e).into_up()
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Optional

__all__ = ["Error", "ErrorType", "ErrorSource", "RetryType"]


class ErrorSource(enum.Enum):
    """Which side of the proxy an error came from."""

    UPSTREAM = "Upstream"
    DOWNSTREAM = "Downstream"
    INTERNAL = "Internal"
    UNSET = ""

    # A member is equal only to itself: hashing it by identity is a C call, where
    # Enum's own hash is a Python one (the engine hashes the source of each error
    # it logs, to count repeats).
    __hash__ = object.__hash__

    def __str__(self) -> str:
        return self.value


class RetryType(enum.Enum):
    """Whether a failed request may be sent again.

    ``REUSED_ONLY`` means: retry only if the failure happened on a connection taken
    from the pool (the upstream may simply have closed an idle connection). The
    engine turns it into a decision before asking :meth:`Error.retry`.
    """

    NO = False
    YES = True
    REUSED_ONLY = "reused_only"


@dataclass(frozen=True, slots=True)
class ErrorType:
    """The kind of an error. Compare with ``==`` against the constants below.

    ``ErrorType.http_status(404)``, ``ErrorType.custom("Name")`` and
    ``ErrorType.custom_code("Name", 418)`` build the parameterised kinds.
    """

    name: str
    code: Optional[int] = None
    custom_kind: bool = False

    @staticmethod
    def http_status(code: int) -> "ErrorType":
        """An error that should be answered with exactly this HTTP status."""
        return ErrorType("HTTPStatus", code)

    @staticmethod
    def custom(name: str) -> "ErrorType":
        """A user-defined kind, without an implied status."""
        return ErrorType(name, None, True)

    @staticmethod
    def custom_code(name: str, code: int) -> "ErrorType":
        """A user-defined kind that carries a status-like code."""
        return ErrorType(name, code, True)

    def __str__(self) -> str:
        if self.name == "HTTPStatus":
            return f"HTTPStatus context: {self.code}"
        return self.name

    # Constants, assigned below the class.
    CONNECT_TIMEDOUT: ClassVar["ErrorType"]
    CONNECT_REFUSED: ClassVar["ErrorType"]
    CONNECT_NO_ROUTE: ClassVar["ErrorType"]
    TLS_WANT_X509_LOOKUP: ClassVar["ErrorType"]
    TLS_HANDSHAKE_FAILURE: ClassVar["ErrorType"]
    TLS_HANDSHAKE_TIMEDOUT: ClassVar["ErrorType"]
    INVALID_CERT: ClassVar["ErrorType"]
    HANDSHAKE_ERROR: ClassVar["ErrorType"]
    CONNECT_ERROR: ClassVar["ErrorType"]
    BIND_ERROR: ClassVar["ErrorType"]
    ACCEPT_ERROR: ClassVar["ErrorType"]
    SOCKET_ERROR: ClassVar["ErrorType"]
    CONNECT_PROXY_FAILURE: ClassVar["ErrorType"]
    INVALID_HTTP_HEADER: ClassVar["ErrorType"]
    H1_ERROR: ClassVar["ErrorType"]
    H2_ERROR: ClassVar["ErrorType"]
    H2_DOWNGRADE: ClassVar["ErrorType"]
    INVALID_H2: ClassVar["ErrorType"]
    READ_ERROR: ClassVar["ErrorType"]
    WRITE_ERROR: ClassVar["ErrorType"]
    READ_TIMEDOUT: ClassVar["ErrorType"]
    WRITE_TIMEDOUT: ClassVar["ErrorType"]
    CONNECTION_CLOSED: ClassVar["ErrorType"]
    FILE_OPEN_ERROR: ClassVar["ErrorType"]
    FILE_CREATE_ERROR: ClassVar["ErrorType"]
    FILE_READ_ERROR: ClassVar["ErrorType"]
    FILE_WRITE_ERROR: ClassVar["ErrorType"]
    INTERNAL_ERROR: ClassVar["ErrorType"]
    UNKNOWN_ERROR: ClassVar["ErrorType"]

    def is_http_status(self) -> bool:
        return self.name == "HTTPStatus"


_CONSTANTS = {
    "CONNECT_TIMEDOUT": "ConnectTimedout",
    "CONNECT_REFUSED": "ConnectRefused",
    "CONNECT_NO_ROUTE": "ConnectNoRoute",
    "TLS_WANT_X509_LOOKUP": "TLSWantX509Lookup",
    "TLS_HANDSHAKE_FAILURE": "TLSHandshakeFailure",
    "TLS_HANDSHAKE_TIMEDOUT": "TLSHandshakeTimedout",
    "INVALID_CERT": "InvalidCert",
    "HANDSHAKE_ERROR": "HandshakeError",
    "CONNECT_ERROR": "ConnectError",
    "BIND_ERROR": "BindError",
    "ACCEPT_ERROR": "AcceptError",
    "SOCKET_ERROR": "SocketError",
    "CONNECT_PROXY_FAILURE": "ConnectProxyFailure",
    "INVALID_HTTP_HEADER": "InvalidHTTPHeader",
    "H1_ERROR": "H1Error",
    "H2_ERROR": "H2Error",
    "H2_DOWNGRADE": "H2Downgrade",
    "INVALID_H2": "InvalidH2",
    "READ_ERROR": "ReadError",
    "WRITE_ERROR": "WriteError",
    "READ_TIMEDOUT": "ReadTimedout",
    "WRITE_TIMEDOUT": "WriteTimedout",
    "CONNECTION_CLOSED": "ConnectionClosed",
    "FILE_OPEN_ERROR": "FileOpenError",
    "FILE_CREATE_ERROR": "FileCreateError",
    "FILE_READ_ERROR": "FileReadError",
    "FILE_WRITE_ERROR": "FileWriteError",
    "INTERNAL_ERROR": "InternalError",
    "UNKNOWN_ERROR": "UnknownError",
}
for _attr, _name in _CONSTANTS.items():
    setattr(ErrorType, _attr, ErrorType(_name))
del _attr, _name


# The members the methods below use, read once: on Python 3.11 each read of a
# member through its Enum class is a call of the class's ``__getattr__`` hook.
_UPSTREAM = ErrorSource.UPSTREAM
_DOWNSTREAM = ErrorSource.DOWNSTREAM
_INTERNAL = ErrorSource.INTERNAL
_UNSET = ErrorSource.UNSET
_NO = RetryType.NO
_YES = RetryType.YES
_REUSED_ONLY = RetryType.REUSED_ONLY


class Error(Exception):
    """The framework's error. See the module docstring."""

    __slots__ = ("etype", "esource", "_retry", "cause", "context")

    def __init__(
        self,
        etype: ErrorType,
        context: Optional[str] = None,
        *,
        source: ErrorSource = ErrorSource.UNSET,
        cause: Optional[BaseException] = None,
        retry: Optional[RetryType] = None,
    ) -> None:
        # No Exception.__init__: the exception's own __new__ already set ``args``
        # (nothing reads them), and an origin that is down makes one Error per request.
        self.etype = etype
        self.esource = source
        self.context = context
        self.cause = cause
        if retry is None:
            # A new error inherits the retry decision of an Error it wraps.
            retry = cause._retry if isinstance(cause, Error) else _NO
        self._retry = retry

    # --- constructors ---------------------------------------------------------
    @classmethod
    def new(cls, etype: ErrorType) -> "Error":
        return cls(etype)

    @classmethod
    def explain(cls, etype: ErrorType, context: str) -> "Error":
        return cls(etype, context)

    @classmethod
    def because(cls, etype: ErrorType, context: str, cause: BaseException) -> "Error":
        return cls(etype, context, cause=cause)

    @classmethod
    def new_up(cls, etype: ErrorType, context: Optional[str] = None) -> "Error":
        return cls(etype, context, source=_UPSTREAM)

    @classmethod
    def new_down(cls, etype: ErrorType, context: Optional[str] = None) -> "Error":
        return cls(etype, context, source=_DOWNSTREAM)

    @classmethod
    def new_in(cls, etype: ErrorType, context: Optional[str] = None) -> "Error":
        return cls(etype, context, source=_INTERNAL)

    @classmethod
    def http_status(cls, code: int, context: Optional[str] = None) -> "Error":
        """An error that ``fail_to_proxy`` answers with exactly ``code``."""
        return cls(ErrorType.http_status(code), context)

    # --- tagging the side -----------------------------------------------------
    def into_up(self) -> "Error":
        self.esource = _UPSTREAM
        return self

    def into_down(self) -> "Error":
        self.esource = _DOWNSTREAM
        return self

    def into_in(self) -> "Error":
        self.esource = _INTERNAL
        return self

    # --- retry ------------------------------------------------------------------
    @property
    def retry_type(self) -> RetryType:
        return self._retry

    def set_retry(self, retry: bool) -> None:
        self._retry = _YES if retry else _NO

    def set_retry_reused_only(self) -> None:
        self._retry = _REUSED_ONLY

    def retry(self) -> bool:
        """Whether the request may be retried.

        Raises ``ValueError`` while the decision is still ``REUSED_ONLY``: the engine
        resolves that (in ``error_while_proxy``) before it asks.
        """
        if self._retry is _REUSED_ONLY:
            raise ValueError("retry decision pending: REUSED_ONLY must be resolved first")
        return self._retry is _YES

    def decide_reused(self, reused: bool) -> None:
        """Resolve ``REUSED_ONLY`` now that we know whether the connection was reused."""
        if self._retry is _REUSED_ONLY:
            self._retry = _YES if reused else _NO

    # --- presentation -----------------------------------------------------------
    def root_cause(self) -> BaseException:
        err: BaseException = self
        while isinstance(err, Error) and err.cause is not None:
            err = err.cause
        return err

    def __str__(self) -> str:
        parts = []
        if self.esource is not _UNSET:
            parts.append(f"{self.esource} ")
        parts.append(str(self.etype))
        if self.context:
            parts.append(f" context: {self.context}")
        if self.cause is not None:
            parts.append(f" cause: {self.cause}")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Error({self})"
