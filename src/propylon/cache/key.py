"""Cache keys and their hashes (Pingora's ``CacheKey`` and ``VarianceBuilder``).

A key has four parts:

* ``namespace`` and ``primary`` name the resource (by default the Host and the
  method-independent URI, see the proxy's ``cache_key_callback``);
* ``variance`` tells apart the representations a ``Vary`` response selects, and is a
  16-byte hash built by :class:`VarianceBuilder` (None when the response does not vary);
* ``user_tag`` is carried along for the application (e.g. a tenant) and never hashed.

Hashes are BLAKE2b with a 16-byte digest, as in Pingora:

* primary hash  = BLAKE2b-128(namespace ‖ primary), no separator between the two;
* combined hash = BLAKE2b-128(primary hash ‖ variance) when a variance is set, else
  the primary hash.

Storage addresses an entry by the combined hash as 32 lowercase hex characters, and all
the Vary variants of one resource by the primary hash, so one purge removes them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Iterable, Optional, Union

__all__ = ["CacheKey", "VarianceBuilder", "default_cache_key", "variance_from_vary", "vary_names"]

HASH_SIZE = 16

# The primary hashes of recent keys: the same resources are asked for again and again,
# and each request makes a new key. Emptied when full (a bound, not an LRU: refilling
# costs one hash per key).
_PRIMARY_HASHES: dict = {}
_PRIMARY_HASHES_MAX = 4096
BytesLike = Union[bytes, str]


def _b(v: BytesLike) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


@dataclass(slots=True, init=False)
class CacheKey:
    """What a cached response is filed under.

    ``namespace`` and ``primary`` are text or bytes (text is UTF-8 encoded for hashing);
    ``primary`` stays readable so that a purge by URL prefix can match it.
    """

    namespace: str
    primary: str
    variance: Optional[bytes] = None
    user_tag: str = ""
    # (binary, hex) primary hash, from _PRIMARY_HASHES or computed once.
    _primary: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)
    # combined() of the variance it was computed for: a hit asks for it more than once.
    _combined: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)

    # Written out rather than generated: every request makes a key, and this one is
    # compiled with the module (a generated __init__ would run interpreted).
    def __init__(self, namespace: str, primary: str, variance: Optional[bytes] = None,
                 user_tag: str = "") -> None:
        self.namespace = namespace
        self.primary = primary
        self.variance = variance
        self.user_tag = user_tag
        self._primary = None
        self._combined = None

    def _primary_hashes(self) -> tuple:
        p = self._primary
        if p is None:
            names = (self.namespace, self.primary)
            p = _PRIMARY_HASHES.get(names)
            if p is None:
                h = blake2b(digest_size=HASH_SIZE)
                h.update(_b(self.namespace))
                h.update(_b(self.primary))
                digest = h.digest()
                p = (digest, digest.hex())
                if len(_PRIMARY_HASHES) >= _PRIMARY_HASHES_MAX:
                    _PRIMARY_HASHES.clear()
                _PRIMARY_HASHES[names] = p
            self._primary = p
        return p

    def primary_bin(self) -> bytes:
        """BLAKE2b-128(namespace ‖ primary), computed once."""
        return self._primary_hashes()[0]

    def primary_hash(self) -> str:
        """The primary hash as 32 lowercase hex characters: every variant shares it."""
        return self._primary_hashes()[1]

    def combined_bin(self) -> bytes:
        p = self.primary_bin()
        if self.variance is None:
            return p
        return blake2b(p + self.variance, digest_size=HASH_SIZE).digest()

    def combined(self) -> str:
        """The hash one stored entry is addressed by (32 lowercase hex characters)."""
        variance = self.variance
        if variance is None:
            return self._primary_hashes()[1]
        memo = self._combined
        if memo is not None and memo[0] is variance:
            return memo[1]
        c = self.combined_bin().hex()
        self._combined = (variance, c)
        return c

    def set_variance(self, variance: Optional[bytes]) -> None:
        """Select one Vary variant (None: the resource itself)."""
        if variance is not None and len(variance) != HASH_SIZE:
            raise ValueError(f"variance must be a {HASH_SIZE}-byte hash, got {len(variance)} bytes")
        self.variance = variance


def default_cache_key(req) -> CacheKey:
    """The key ``cache_key_callback`` gives by default: the request's Host (lowercased;
    HTTP/2's ``:authority`` arrives as Host) as namespace and its target (path and
    query, as received) as primary. The method is not part of it, so a HEAD is
    answered from a GET's entry; a purge by prefix matches paths within one host.
    """
    host = req.headers.get_bytes(b"host")
    return CacheKey(host.lower().decode("latin-1") if host is not None else "", req.raw_path.decode("latin-1"))


class VarianceBuilder:
    """Builds a variance hash from (name, value) pairs, whatever order they are added in.

    The hash is BLAKE2b-128 over ``name ‖ 0x00 ‖ value ‖ 0x00`` for each pair in sorted
    name order; an empty builder has no variance (``finalize()`` returns None).
    """

    __slots__ = ("_pairs",)

    def __init__(self) -> None:
        self._pairs: dict[bytes, bytes] = {}

    def add_value(self, name: BytesLike, value: BytesLike) -> None:
        self._pairs[_b(name)] = _b(value)

    def is_empty(self) -> bool:
        return not self._pairs

    def finalize(self) -> Optional[bytes]:
        if not self._pairs:
            return None
        h = blake2b(digest_size=HASH_SIZE)
        for name in sorted(self._pairs):
            h.update(name)
            h.update(b"\x00")
            h.update(self._pairs[name])
            h.update(b"\x00")
        return h.digest()


def variance_from_vary(vary_values: Iterable[bytes], request_headers) -> Optional[bytes]:
    """The variance of a request for a response whose ``Vary`` fields are ``vary_values``.

    Each field name listed by ``Vary`` (lowercased) adds the request's values of that
    field, joined by ``", "`` in arrival order (an absent field adds an empty value, so
    "no Accept-Encoding" is a variant of its own). ``Vary: *`` cannot be keyed: callers
    treat such a response as uncacheable (see :func:`propylon.cache.vary_names`).
    Returns None when ``Vary`` names nothing.
    """
    builder = VarianceBuilder()
    for name in vary_names(vary_values) or ():
        builder.add_value(name, b", ".join(request_headers.get_all_bytes(name)))
    return builder.finalize()


def vary_names(vary_values: Iterable[bytes]) -> Optional[list[bytes]]:
    """The lowercased field names ``Vary`` lists, sorted and deduplicated; None for ``*``."""
    names = set()
    for value in vary_values:
        for token in value.split(b","):
            token = token.strip().lower()
            if token == b"*":
                return None
            if token:
                names.add(token)
    return sorted(names)
