"""One upstream server as the load balancer sees it: an address and a weight."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any, Optional, Union

__all__ = ["Backend", "parse_addr"]

# Sort rank of the address families: inet v4, inet v6, then Unix sockets, the same
# order a set of Pingora backends has (IPv4 < IPv6 < UDS).
_RANK_V4 = 0
_RANK_V6 = 1
_RANK_UNIX = 2


def parse_addr(addr: str) -> tuple[str, str, Optional[int], tuple]:
    """Parse ``"1.2.3.4:80"``, ``"[::1]:80"`` or ``"unix:/path"``.

    Returns ``(canonical_addr, host_or_path, port_or_None, sort_key)``. Only IP
    literals are accepted (no name lookups); raises ``ValueError`` naming the address.
    """
    if not isinstance(addr, str):
        raise ValueError(f"invalid backend address {addr!r}: expected a string")
    text = addr.strip()
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ValueError(f"invalid backend address {addr!r}: empty Unix socket path")
        return f"unix:{path}", path, None, (_RANK_UNIX, path.encode(), 0)
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"invalid backend address {addr!r}: expected [ipv6]:port")
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"invalid backend address {addr!r}: expected host:port")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid backend address {addr!r}: {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid backend address {addr!r}: bad port {port_text!r}")
    port = int(port_text)
    if ip.version == 4:
        return f"{ip}:{port}", str(ip), port, (_RANK_V4, ip.packed, port)
    return f"[{ip}]:{port}", str(ip), port, (_RANK_V6, ip.packed, port)


class Backend:
    """An upstream server: ``addr`` plus a relative ``weight`` (default 1).

    ``addr`` is an IP literal with a port (``"127.0.0.1:18080"``, ``"[::1]:80"``) or a
    Unix socket (``"unix:/run/app.sock"``); it is parsed once into :attr:`host` and
    :attr:`port` (``None`` for Unix sockets, where :attr:`host` is the path).
    ``ext`` is a free dict for the application's own annotations; it takes no part
    in equality, ordering or hashing, so two backends with the same address and
    weight are the same backend. Backends order like Pingora's: IPv4 before IPv6
    before Unix sockets, then by address bytes, port and weight.

    Raises ``ValueError`` for a malformed address or a weight below 1.
    """

    __slots__ = ("addr", "host", "port", "weight", "ext", "hash_key", "_key", "__weakref__")

    def __init__(self, addr: str, weight: int = 1, ext: Optional[dict] = None) -> None:
        canonical, host, port, sort_key = parse_addr(addr)
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise ValueError(f"invalid weight {weight!r} for backend {addr!r}: must be an integer >= 1")
        self.addr: str = canonical
        self.host: str = host
        self.port: Optional[int] = port
        self.weight: int = weight
        self.ext: dict = {} if ext is None else ext
        self._key = (sort_key, weight)
        # A stable 64-bit identity of (address, weight), the same in every process,
        # so health and enablement maps can be shared (admin API, workers).
        digest = hashlib.blake2b(f"{canonical}|{weight}".encode(), digest_size=8).digest()
        self.hash_key: int = int.from_bytes(digest, "little")

    @classmethod
    def coerce(cls, item: Union["Backend", str, tuple]) -> "Backend":
        """Turn ``Backend``, ``"addr"`` or ``("addr", weight)`` into a :class:`Backend`."""
        if isinstance(item, Backend):
            return item
        if isinstance(item, tuple):
            return cls(*item)
        return cls(item)

    @property
    def is_unix(self) -> bool:
        """True for a Unix-socket backend."""
        return self.port is None

    @property
    def socket_addr(self) -> Union[tuple[str, int], str]:
        """``(host, port)`` for inet backends, the path for Unix sockets."""
        return self.host if self.port is None else (self.host, self.port)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Backend):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: "Backend") -> bool:
        return self._key < other._key

    def __le__(self, other: "Backend") -> bool:
        return self._key <= other._key

    def __gt__(self, other: "Backend") -> bool:
        return self._key > other._key

    def __ge__(self, other: "Backend") -> bool:
        return self._key >= other._key

    def __hash__(self) -> int:
        return self.hash_key

    def __repr__(self) -> str:
        return f"Backend(addr={self.addr!r}, weight={self.weight})"

    def __str__(self) -> str:
        return self.addr
