"""Request and response objects shared by the lab's HTTP/1 and HTTP/2 servers.

A lab handler is ``async def handler(request: LabRequest) -> LabResponse``. The
servers fill :class:`LabRequest` exactly as the request arrived (header order and
case kept) so a test can see what a proxy forwarded.
"""

from __future__ import annotations

import email.utils
import hashlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import AsyncIterator, Awaitable, Callable, Optional, Union
from urllib.parse import parse_qsl

# Bodies are counted and hashed in full but only this much is kept for /echo.
BODY_KEEP = 64 * 1024


@dataclass
class TlsInfo:
    """What the TLS handshake of a connection settled on."""

    sni: Optional[str] = None
    alpn: Optional[str] = None
    version: Optional[str] = None
    client_cert_subject: Optional[str] = None

    def as_dict(self) -> dict[str, Optional[str]]:
        """The fields as a JSON-friendly dict."""
        return {"sni": self.sni, "alpn": self.alpn, "version": self.version,
                "client_cert_subject": self.client_cert_subject}


@dataclass
class LabRequest:
    """One request as received: ``headers`` is a list of (name, value) bytes in wire order."""

    method: str
    target: str
    protocol: str  # "HTTP/1.1", "HTTP/1.0" or "HTTP/2"
    headers: list[tuple[bytes, bytes]]
    client: str = ""
    connection_requests: int = 1
    tls: Optional[TlsInfo] = None
    body: bytes = b""
    body_length: int = 0
    body_sha256: str = hashlib.sha256(b"").hexdigest()
    chunked: bool = False
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The path part of the target (before ``?``)."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        """The query string, without ``?`` ("" if none)."""
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) > 1 else ""

    def param(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """First value of query parameter ``name``, or ``default``."""
        for k, v in parse_qsl(self.query, keep_blank_values=True):
            if k == name:
                return v
        return default

    def int_param(self, name: str, default: int) -> int:
        """Query parameter ``name`` as an int; ``default`` if absent or not a number."""
        try:
            return int(self.param(name, str(default)) or default)
        except ValueError:
            return default

    def header(self, name: str) -> Optional[str]:
        """First value of header ``name`` (case-insensitive), decoded as latin-1."""
        key = name.lower().encode("latin-1")
        for k, v in self.headers:
            if k.lower() == key:
                return v.decode("latin-1")
        return None

    @property
    def host(self) -> Optional[str]:
        """The Host header, or HTTP/2's ``:authority``."""
        return self.header(":authority") or self.header("host")


Body = Union[bytes, AsyncIterator[bytes]]


@dataclass
class LabResponse:
    """A response to send.

    ``body`` is bytes or an async iterator of chunks; an iterator is sent with
    ``Content-Length: length`` when ``length`` is given, else chunked (HTTP/1.1).
    ``close`` closes the connection after the response; ``drop`` closes it instead
    of answering at all.
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Body = b""
    length: Optional[int] = None
    close: bool = False
    drop: bool = False
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def has_header(self, name: str) -> bool:
        """Whether a header called ``name`` (case-insensitive) is set."""
        low = name.lower()
        return any(k.lower() == low for k, _ in self.headers)


Handler = Callable[[LabRequest], Awaitable[LabResponse]]


def reason(status: int) -> str:
    """The standard reason phrase of ``status`` ("" for unknown codes)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def http_date() -> str:
    """The current time formatted for a Date header."""
    return email.utils.formatdate(usegmt=True)


def status_has_body(status: int, method: str) -> bool:
    """Whether a response with ``status`` to ``method`` carries a body on the wire."""
    return not (method == "HEAD" or 100 <= status < 200 or status in (204, 304))
