"""Where a request goes: ``HttpPeer`` and its ``PeerOptions``."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Awaitable, Optional, Protocol, Union

__all__ = ["ALPN", "HttpPeer", "PeerOptions", "TcpKeepalive", "L4Connect", "CertKey"]


class ALPN(enum.Enum):
    """Which HTTP versions to offer an upstream.

    ``H1`` (the default) speaks HTTP/1.1; ``H2`` HTTP/2 only; ``H2H1`` prefers h2
    and falls back to HTTP/1.1. Without TLS, ``H2`` means h2c with prior knowledge.
    """

    H1 = "h1"
    H2 = "h2"
    H2H1 = "h2h1"

    @classmethod
    def new(cls, max_version: int, min_version: int) -> "ALPN":
        if max_version == 1:
            return cls.H1
        if min_version == 2:
            return cls.H2
        return cls.H2H1

    def protocols(self) -> list[str]:
        return {"h1": ["http/1.1"], "h2": ["h2"], "h2h1": ["h2", "http/1.1"]}[self.value]


@dataclass(frozen=True, slots=True)
class TcpKeepalive:
    """TCP keep-alive probes on upstream sockets (seconds, count)."""

    idle: float
    interval: float
    count: int


@dataclass(frozen=True, slots=True)
class CertKey:
    """A client certificate chain and key, as PEM file paths, for upstream mTLS."""

    cert_file: str
    key_file: str


class L4Connect(Protocol):
    """A custom way to reach a peer (lesson 22: through an HTTP CONNECT proxy).

    ``connect`` returns a connected ``socket.socket``; TLS, when the peer asks for
    it, is then negotiated over that socket by Propylon.
    """

    def connect(self, peer: "HttpPeer") -> Awaitable[Any]: ...


#: Seconds of the default connect, read and write timeouts (nginx's ``proxy_*_timeout``).
DEFAULT_UPSTREAM_TIMEOUT = 60.0


@dataclass(slots=True)
class PeerOptions:
    """How to talk to a peer. Timeouts are seconds; None means no limit.

    * ``connection_timeout``: TCP connect (→ ``ConnectTimedout``). Default 60 s.
    * ``total_connection_timeout``: TCP connect and TLS handshake together (unset).
    * ``read_timeout`` / ``write_timeout``: each read of the response, each wait
      for the upstream to take request bytes (→ ``ReadTimedout`` / ``WriteTimedout``);
      the read timeout also closes an upgraded tunnel (WebSocket) idle that long.
      Default 60 s each.
    * ``idle_timeout``: how long an idle pooled connection is kept.
    * ``verify_cert`` / ``verify_hostname`` / ``alternative_cn`` / ``ca_file``:
      upstream TLS checks (on by default).
    * ``alpn``: HTTP versions to offer; ``max_h2_streams``: streams per h2 connection.
    * ``tcp_keepalive``, ``bind_to``, ``custom_l4``: socket-level settings.

    Departure from Pingora: Pingora leaves the connect, read and write timeouts
    unset, so an origin that accepts and never answers holds the client forever.
    Propylon defaults them to 60 s, like nginx's ``proxy_connect_timeout``,
    ``proxy_read_timeout`` and ``proxy_send_timeout``; set one to None to wait
    without limit. The status stays Pingora's: a timeout is an upstream error, so
    ``fail_to_proxy`` answers 502 unless a hook maps it otherwise (e.g. to 504).
    """

    connection_timeout: Optional[float] = DEFAULT_UPSTREAM_TIMEOUT
    total_connection_timeout: Optional[float] = None
    read_timeout: Optional[float] = DEFAULT_UPSTREAM_TIMEOUT
    write_timeout: Optional[float] = DEFAULT_UPSTREAM_TIMEOUT
    idle_timeout: Optional[float] = None
    verify_cert: bool = True
    verify_hostname: bool = True
    alternative_cn: Optional[str] = None
    ca_file: Optional[str] = None
    alpn: ALPN = ALPN.H1
    max_h2_streams: int = 1
    h2_ping_interval: Optional[float] = None
    tcp_keepalive: Optional[TcpKeepalive] = None
    tcp_fast_open: bool = False
    bind_to: Optional[str] = None
    custom_l4: Optional[L4Connect] = None


Address = Union[tuple, str]


def _normalize(address) -> Address:
    """(host, port) or a socket path, from a string, a list or a load balancer's Backend."""
    sock_addr = getattr(address, "socket_addr", None)
    if sock_addr is not None:  # a load balancer's Backend
        address = sock_addr
    if isinstance(address, str) and address.startswith("unix:"):
        address = address[5:]
    if isinstance(address, str) and not address.startswith("/"):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"peer address {address!r} needs host:port")
        return (host.strip("[]"), int(port))
    if isinstance(address, (tuple, list)):
        return (str(address[0]), int(address[1]))
    return address


class HttpPeer:
    """An upstream HTTP server: an address, whether to use TLS, and the SNI.

    ``HttpPeer(("127.0.0.1", 8080), tls=False, sni="blue.propylon.test")``;
    ``HttpPeer("127.0.0.1:8080", False, "")`` also works, and a host name is
    resolved without blocking when the connection is made.
    ``HttpPeer.new_uds("/run/app.sock", tls=False, sni="")`` reaches a Unix socket.
    A load balancer's ``Backend`` can be given as the address directly.
    """

    __slots__ = ("address", "tls", "sni", "_options", "client_cert_key", "group_key", "idle_group", "_key",
                 "__weakref__")

    def __init__(self, address: Address, tls: bool = False, sni: str = "",
                 options: Optional[PeerOptions] = None) -> None:
        if type(address) is not tuple:
            address = _normalize(address)
        elif len(address) != 2 or type(address[1]) is not int:
            address = (str(address[0]), int(address[1]))
        self.address: Address = address
        self.tls = bool(tls)
        self.sni = sni or ""
        # Made on first access: most peers never change an option, and a peer is
        # often built per request (read it through settings() to avoid making one).
        self._options = options
        self.client_cert_key: Optional[CertKey] = None
        self.group_key = 0
        #: A ``propylon.connectors.pool.IdleGroup`` shared with other peers: at most its size
        #: of idle connections to all of them are kept (None: only the pool's own bound).
        self.idle_group: Optional[Any] = None
        self._key: Optional[tuple] = None

    @classmethod
    def new_uds(cls, path: str, tls: bool = False, sni: str = "",
                options: Optional[PeerOptions] = None) -> "HttpPeer":
        if not path.startswith("/"):
            raise ValueError(f"unix socket path {path!r} must be absolute")
        return cls(path, tls, sni, options)

    @property
    def is_uds(self) -> bool:
        return isinstance(self.address, str)

    @property
    def options(self) -> PeerOptions:
        """This peer's options, to read or change (``peer.options.read_timeout = 2``)."""
        o = self._options
        if o is None:
            o = self._options = PeerOptions()
        return o

    @options.setter
    def options(self, value: PeerOptions) -> None:
        self._options = value
        self._key = None

    def settings(self) -> PeerOptions:
        """The options in force, without making a private copy of the defaults.
        The result is shared when no option was set: read it, do not change it."""
        return self._options or DEFAULT_OPTIONS

    def reuse_key(self) -> tuple:
        """What two connections must share to be interchangeable (Pingora's reuse hash).

        Timeouts, ALPN, CA and socket options are not part of it, as in Pingora.
        """
        k = self._key
        if k is None:
            o = self._options
            k = self._key = (self.address, self.tls, self.sni, self.client_cert_key, self.group_key,
                             _DEFAULT_OPTIONS_KEY if o is None else _options_key(o))
        return k

    def __str__(self) -> str:
        addr = self.address if self.is_uds else f"{self.address[0]}:{self.address[1]}"
        return f"addr: {addr}, scheme: {'HTTPS' if self.tls else 'HTTP'}" + (f", sni: {self.sni}" if self.sni else "")

    def __repr__(self) -> str:
        return f"HttpPeer({self})"


def _options_key(o: PeerOptions) -> tuple:
    return (o.verify_cert, o.verify_hostname, o.alternative_cn, o.max_h2_streams,
            id(o.custom_l4) if o.custom_l4 is not None else None)


#: The options of a peer that set none (shared: never change it).
DEFAULT_OPTIONS = PeerOptions()
_DEFAULT_OPTIONS_KEY = _options_key(DEFAULT_OPTIONS)
