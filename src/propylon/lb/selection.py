"""Backend selection algorithms: weighted round robin, random, FNV hash, Ketama.

A selection *class* (``RoundRobin``, ``Random``, ``FNVHash``, ``Consistent``) is what
users pass to :class:`~propylon.lb.LoadBalancer`; ``build(backends)`` turns a sorted
tuple of backends into a selector *instance* whose tables are computed once. A new
backend set gets a new selector, swapped in with one reference assignment, so a
selection never sees a half-built table.

Semantics follow pingora-load-balancing:

* Weighted algorithms lay each backend out ``weight`` times contiguously in set
  order (``A, A, B`` for A:2, B:1). The first pick is
  ``weighted[next(key) % len(weighted)]``; fallback picks ignore weights and walk
  the unweighted list with ``idx = next(prev_idx as 8 little-endian bytes)``.
* ``RoundRobin``'s ``next`` is a counter starting at 0 that every pick (fallbacks
  too) advances; ``Random`` draws 64 random bits; ``FNVHash`` is FNV-1a 64 of the key.
* ``Consistent`` is nginx's ``hash ... consistent`` ring: 160 crc32 points per
  weight unit, looked up with crc32 of the key, walking the ring on fallback.

:meth:`Selector.pick` merges Pingora's ``UniqueIterator``: duplicates are skipped,
at most ``max_iterations`` items are pulled (duplicates count) and the first backend
accepted is returned. The common case, a first pick that is accepted, allocates
nothing.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import zlib
from typing import Callable, Optional, Sequence

from .backend import Backend

__all__ = [
    "Selector",
    "Weighted",
    "RoundRobin",
    "Random",
    "FNVHash",
    "Consistent",
    "KetamaHashing",
    "fnv1a_64",
    "POINTS_PER_WEIGHT",
]

Accept = Callable[[Backend, bool], bool]
Ready = Callable[[Backend], bool]

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF

#: Ketama points per unit of weight (the nginx constant).
POINTS_PER_WEIGHT = 160


def fnv1a_64(data: bytes) -> int:
    """FNV-1a, 64-bit, of ``data``."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


class Selector:
    """A built selection table for one backend set. Subclasses implement :meth:`pick`."""

    __slots__ = ("backends",)

    def __init__(self, backends: Sequence[Backend]) -> None:
        self.backends: tuple[Backend, ...] = tuple(backends)

    @classmethod
    def build(cls, backends: Sequence[Backend], config: object = None) -> "Selector":
        """Build a selector for ``backends`` (sorted, unique)."""
        return cls(backends)

    def pick(
        self, key: bytes, max_iterations: int, accept: Optional[Accept], ready: Ready
    ) -> Optional[Backend]:
        """The first backend accepted, in this algorithm's order for ``key``.

        ``accept(backend, ready)`` decides; ``None`` means "accept if ready".
        """
        raise NotImplementedError

    def iter(self, key: bytes):
        """Every item the algorithm yields for ``key``, duplicates included (endless
        for non-empty sets). For inspection and tests; :meth:`pick` is the fast path."""
        raise NotImplementedError


class Weighted(Selector):
    """Common body of the weighted algorithms; subclasses define ``_next``."""

    __slots__ = ("_weighted", "_wlen", "_n")

    def __init__(self, backends: Sequence[Backend]) -> None:
        super().__init__(backends)
        # The weighted list holds the Backend objects themselves: one index per pick.
        self._weighted = tuple(b for b in self.backends for _ in range(b.weight))
        self._wlen = len(self._weighted)
        self._n = len(self.backends)

    def _next(self, key: bytes) -> int:
        raise NotImplementedError

    def _fallback(self, index: int) -> int:
        return self._next((index & _MASK64).to_bytes(8, "little"))

    def pick(
        self, key: bytes, max_iterations: int, accept: Optional[Accept], ready: Ready
    ) -> Optional[Backend]:
        if not self._n or max_iterations <= 0:
            return None
        index = self._next(key)
        b = self._weighted[index % self._wlen]
        if (ready(b) if accept is None else accept(b, ready(b))):
            return b
        seen = {b.hash_key}
        backends, n = self.backends, self._n
        for _ in range(max_iterations - 1):
            index = self._fallback(index)
            b = backends[index % n]
            if b.hash_key in seen:
                continue
            seen.add(b.hash_key)
            if (ready(b) if accept is None else accept(b, ready(b))):
                return b
        return None

    def iter(self, key: bytes):
        if not self._n:
            return
        index = self._next(key)
        yield self._weighted[index % self._wlen]
        while True:
            index = self._fallback(index)
            yield self.backends[index % self._n]


class RoundRobin(Weighted):
    """Weighted round robin: a counter from 0, advanced by every pick; key ignored."""

    __slots__ = ("_counter",)

    def __init__(self, backends: Sequence[Backend]) -> None:
        super().__init__(backends)
        self._counter = itertools.count()

    def _next(self, key: bytes) -> int:
        return next(self._counter)

    def _fallback(self, index: int) -> int:
        return next(self._counter)


class Random(Weighted):
    """Weighted random: each pick draws 64 random bits; key ignored."""

    __slots__ = ()

    def _next(self, key: bytes) -> int:
        return random.getrandbits(64)

    def _fallback(self, index: int) -> int:
        return random.getrandbits(64)


# Hashing a key byte by byte in Python costs ~70 ns a byte; hash keys (paths,
# session ids) repeat, so recent results are remembered (bounded, C-implemented).
_fnv_cached = functools.lru_cache(maxsize=8192)(fnv1a_64)


class FNVHash(Weighted):
    """Weighted hash: FNV-1a 64 of the key picks from the weighted list."""

    __slots__ = ()

    def _next(self, key: bytes) -> int:
        return _fnv_cached(key)

    def _fallback(self, index: int) -> int:
        return fnv1a_64((index & _MASK64).to_bytes(8, "little"))


class Consistent(Selector):
    """Ketama consistent hashing, point-for-point compatible with nginx.

    Each inet backend gets ``160 * weight`` points: with ``base = "{ip}\\0{port}"``,
    point *i* is ``crc32(base + prev.to_bytes(4, "little"))`` where ``prev`` is point
    *i-1* (0 for the first). Points are sorted, equal hashes kept once. A key maps to
    the first point ``>= crc32(key)``, wrapping to the start; fallbacks walk the ring
    onwards. Unix-socket backends are not placed on the ring.

    Like Pingora, an IPv6 backend is hashed as its bare address (``::1\0port``),
    where nginx would hash the bracketed text of its config (``[::1]``); IPv4
    rings are identical to nginx's.
    """

    __slots__ = ("_hashes", "_nodes", "_len")

    def __init__(self, backends: Sequence[Backend]) -> None:
        super().__init__(backends)
        points: list[tuple[int, int]] = []
        for node, b in enumerate(self.backends):
            if b.port is None:
                continue
            base = zlib.crc32(f"{b.host}\0{b.port}".encode())
            prev = 0
            for _ in range(POINTS_PER_WEIGHT * b.weight):
                prev = zlib.crc32(prev.to_bytes(4, "little"), base)
                points.append((prev, node))
        points.sort()
        hashes: list[int] = []
        nodes: list[Backend] = []
        last = -1
        for h, node in points:
            if h != last:
                hashes.append(h)
                nodes.append(self.backends[node])
                last = h
        self._hashes = hashes
        self._nodes = nodes
        self._len = len(hashes)

    def points(self) -> list[tuple[int, Backend]]:
        """The ring as sorted ``(hash, backend)`` pairs."""
        return list(zip(self._hashes, self._nodes))

    def _start(self, key: bytes) -> int:
        i = bisect.bisect_left(self._hashes, zlib.crc32(key))
        return 0 if i == self._len else i

    def pick(
        self, key: bytes, max_iterations: int, accept: Optional[Accept], ready: Ready
    ) -> Optional[Backend]:
        if not self._len or max_iterations <= 0:
            return None
        i = self._start(key)
        nodes, length = self._nodes, self._len
        b = nodes[i]
        if (ready(b) if accept is None else accept(b, ready(b))):
            return b
        seen = {b.hash_key}
        for _ in range(max_iterations - 1):
            i += 1
            if i == length:
                i = 0
            b = nodes[i]
            if b.hash_key in seen:
                continue
            seen.add(b.hash_key)
            if (ready(b) if accept is None else accept(b, ready(b))):
                return b
        return None

    def iter(self, key: bytes):
        if not self._len:
            return
        i = self._start(key)
        while True:
            yield self._nodes[i]
            i = (i + 1) % self._len


#: Pingora's name for the same algorithm.
KetamaHashing = Consistent
