"""Eviction managers: which entries go when storage is over its byte budget.

:class:`EvictionManager` is the interface (Pingora's ``EvictionManager``, reduced to
what an in-process storage needs); :class:`LruEviction` evicts the least recently used
entries first, counting bytes, with O(1) ``admit``/``access``/``remove`` (an
insertion-ordered dict: ``move_to_end`` on use, pop from the front to evict).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict

__all__ = ["EvictionManager", "LruEviction"]


class EvictionManager(ABC):
    """Tracks entries by key and size and names the ones to evict."""

    @abstractmethod
    def admit(self, key: str, size: int) -> list[str]:
        """Record ``key`` (new or replaced) as ``size`` bytes, most recently used.

        Returns the keys the caller must now remove to get back under the limit, least
        valuable first; ``key`` itself is among them when it alone exceeds the limit.
        Those keys are already forgotten by the manager.
        """

    @abstractmethod
    def access(self, key: str) -> bool:
        """Note a use of ``key``; False if the manager does not know it."""

    @abstractmethod
    def remove(self, key: str) -> None:
        """Forget ``key`` (purged or replaced outside the manager)."""

    @property
    @abstractmethod
    def total_bytes(self) -> int: ...

    @property
    @abstractmethod
    def total_items(self) -> int: ...


class LruEviction(EvictionManager):
    """Least-recently-used eviction bounded by ``limit_bytes`` (and optionally items)."""

    __slots__ = ("limit_bytes", "limit_items", "_sizes", "_bytes")

    def __init__(self, limit_bytes: int, limit_items: int = 0) -> None:
        if limit_bytes <= 0:
            raise ValueError(f"limit_bytes must be positive, got {limit_bytes}")
        if limit_items < 0:
            raise ValueError(f"limit_items must be >= 0 (0: no limit), got {limit_items}")
        self.limit_bytes = limit_bytes
        self.limit_items = limit_items
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._bytes = 0

    def admit(self, key: str, size: int) -> list[str]:
        sizes = self._sizes
        old = sizes.pop(key, None)
        if old is not None:
            self._bytes -= old
        sizes[key] = size
        self._bytes += size
        evicted = []
        while self._bytes > self.limit_bytes or (self.limit_items and len(sizes) > self.limit_items):
            victim, vsize = sizes.popitem(last=False)
            self._bytes -= vsize
            evicted.append(victim)
        return evicted

    def access(self, key: str) -> bool:
        try:
            self._sizes.move_to_end(key)
        except KeyError:
            return False
        return True

    def remove(self, key: str) -> None:
        size = self._sizes.pop(key, None)
        if size is not None:
            self._bytes -= size

    def lru_keys(self) -> list[str]:
        """Keys from least to most recently used (for inspection and tests)."""
        return list(self._sizes)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    @property
    def total_items(self) -> int:
        return len(self._sizes)
