"""Facts about a connection's socket, gathered once when it is accepted or connected."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Union

__all__ = ["SocketAddr", "SocketDigest", "TlsDigest", "Digest"]

# An inet address is (host, port) – IPv6 addresses keep only those two parts –
# and a Unix socket address is its path.
SocketAddr = Union[tuple, str]


def _norm(addr: Any) -> Optional[SocketAddr]:
    if addr is None or addr == "" or addr == b"":
        return None
    if isinstance(addr, (tuple, list)):
        return (addr[0], addr[1])
    return addr


@dataclass(slots=True)
class SocketDigest:
    """Peer and local address of a socket."""

    peer_addr: Optional[SocketAddr]
    local_addr: Optional[SocketAddr]
    family: int = socket.AF_INET

    @classmethod
    def from_transport(cls, transport: Any) -> "SocketDigest":
        sock = transport.get_extra_info("socket")
        family = sock.family if sock is not None else socket.AF_INET
        return cls(
            _norm(transport.get_extra_info("peername")),
            _norm(transport.get_extra_info("sockname")),
            family,
        )

    @property
    def peer_ip(self) -> Optional[str]:
        return self.peer_addr[0] if isinstance(self.peer_addr, tuple) else None


@dataclass(slots=True)
class TlsDigest:
    """What the TLS handshake settled: version, cipher, SNI, ALPN, peer certificate."""

    version: Optional[str] = None
    cipher: Optional[str] = None
    sni: Optional[str] = None
    alpn: Optional[str] = None
    peer_cert: Optional[dict] = None
    peer_cert_der: Optional[bytes] = None
    session_reused: bool = False


@dataclass(slots=True)
class Digest:
    """Everything known about one connection (Pingora's ``Digest``)."""

    socket: SocketDigest
    tls: Optional[TlsDigest] = None
    established: float = field(default_factory=time.time)
