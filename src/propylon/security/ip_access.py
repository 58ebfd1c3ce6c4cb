"""Allow and deny lists of client addresses (lesson 39's access control).

:class:`IpAccessList` answers one question per request: may this client address
in? Rules, in order:

1. An address matching any **deny** entry is refused (deny wins over allow).
2. Otherwise, with an empty **allow** list, everything else is admitted.
3. Otherwise the address is admitted only if it matches an allow entry.

Entries are CIDR ranges (``10.0.0.0/8``, ``2001:db8::/32``) or single addresses
(``192.168.1.7``, ``::1``). Host bits after the prefix are ignored, as nginx does
(``10.1.2.3/8`` means ``10.0.0.0/8``). An IPv4-mapped IPv6 address
(``::ffff:10.1.2.3``, what a dual-stack socket reports for an IPv4 client) is checked
as the IPv4 address it carries, and a mapped IPv6 entry (``::ffff:10.0.0.0/104``)
as the IPv4 range it carries. A string that is not an address is refused.

Lookups are cheap: ranges are stored as integer sets, one per prefix length, so a
check costs one set lookup per distinct prefix length in the lists, and the answers
for the most recent addresses are cached.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Union

__all__ = ["IpAccessList"]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
AddressLike = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]
EntryLike = Union[str, ipaddress.IPv4Network, ipaddress.IPv6Network, ipaddress.IPv4Address, ipaddress.IPv6Address]

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _parse_entry(entry: EntryLike, which: str) -> Network:
    try:
        if isinstance(entry, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            net: Network = ipaddress.ip_network(entry)
        elif isinstance(entry, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            net = entry
        elif isinstance(entry, str):
            net = ipaddress.ip_network(entry.strip(), strict=False)
        else:
            raise TypeError(type(entry).__name__)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{which} list: bad address or CIDR range {entry!r} ({exc})") from None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_MAPPED):
        v4 = ipaddress.IPv4Address(int(net.network_address) & 0xFFFFFFFF)
        net = ipaddress.IPv4Network((v4, net.prefixlen - 96))
    return net


class _Matcher:
    """Networks of one list, as ``{prefix length: {network as int}}`` per family."""

    __slots__ = ("v4", "v6")

    def __init__(self, networks: Iterable[Network]) -> None:
        v4: dict[int, set[int]] = {}
        v6: dict[int, set[int]] = {}
        for net in networks:
            table = v4 if net.version == 4 else v6
            table.setdefault(net.prefixlen, set()).add(int(net.network_address))
        width4, width6 = 32, 128
        # (mask, members) pairs, longest prefix first (order does not change results).
        self.v4 = [(_mask(width4, p), frozenset(s)) for p, s in sorted(v4.items(), reverse=True)]
        self.v6 = [(_mask(width6, p), frozenset(s)) for p, s in sorted(v6.items(), reverse=True)]

    def matches(self, version: int, value: int) -> bool:
        for mask, members in self.v4 if version == 4 else self.v6:
            if value & mask in members:
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)


def _mask(width: int, prefix: int) -> int:
    return ((1 << prefix) - 1) << (width - prefix)


class IpAccessList:
    """Decide from allow and deny lists whether a client address may connect.

    Args:
        allow: addresses or CIDR ranges admitted; empty (default) admits all.
        deny: addresses or CIDR ranges refused, even when also allowed.
        cache_size: how many recent answers to remember. Default 4096; 0 disables.

    Raises:
        ValueError: an entry is not an address or range; the message names it.

    Example::

        acl = IpAccessList(allow=["10.0.0.0/8", "::1"], deny=["10.6.6.0/24"])
        if not acl.allows(client_ip):
            return await reject(403)
    """

    def __init__(
        self,
        allow: Iterable[EntryLike] = (),
        deny: Iterable[EntryLike] = (),
        *,
        cache_size: int = 4096,
    ) -> None:
        self.allow: tuple[Network, ...] = tuple(_parse_entry(e, "allow") for e in allow)
        self.deny: tuple[Network, ...] = tuple(_parse_entry(e, "deny") for e in deny)
        self._allow = _Matcher(self.allow)
        self._deny = _Matcher(self.deny)
        self._allow_all = not self._allow
        self.allows = lru_cache(maxsize=cache_size)(self._decide) if cache_size else self._decide  # type: ignore[method-assign]

    def allows(self, ip: AddressLike) -> bool:  # replaced per instance in __init__
        """True if ``ip`` may pass: not denied, and allowed (or no allow list)."""
        return self._decide(ip)

    def _decide(self, ip: AddressLike) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if addr.version == 6:
            mapped = addr.ipv4_mapped  # type: ignore[union-attr]
            if mapped is not None:
                addr = mapped
        version, value = addr.version, int(addr)
        if self._deny.matches(version, value):
            return False
        return self._allow_all or self._allow.matches(version, value)

    def __repr__(self) -> str:
        allow = [str(n) for n in self.allow]
        deny = [str(n) for n in self.deny]
        return f"IpAccessList(allow={allow}, deny={deny})"
