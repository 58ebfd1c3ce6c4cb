"""``Predictor``: remembers which resources turned out uncacheable (Pingora's predictor).

Without it, every request for a resource the origin never lets us store (``no-store``,
too large) would queue on the cache lock behind the previous one. The engine asks
:meth:`Predictor.cacheable_prediction` before taking the lock: a resource recently found
uncacheable goes upstream at once, unlocked. Only reasons that say something about the
resource are remembered (the origin said no, or it is too large); transient ones
(storage or upstream errors, lock timeouts...) are not.

Keys are primary hashes (all variants together), kept in an LRU of ``capacity`` entries.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Union

from .key import CacheKey
from .phase import NoCacheReason

__all__ = ["Predictor"]

_REMEMBERED = frozenset((NoCacheReason.ORIGIN_NOT_CACHE, NoCacheReason.RESPONSE_TOO_LARGE,
                         NoCacheReason.PREDICTED_RESPONSE_TOO_LARGE))


class Predictor:
    """An LRU of resources known to be uncacheable."""

    __slots__ = ("capacity", "_uncacheable")

    def __init__(self, capacity: int = 16384) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._uncacheable: OrderedDict[str, None] = OrderedDict()

    @staticmethod
    def _k(key: Union[CacheKey, str]) -> str:
        return key.primary_hash() if isinstance(key, CacheKey) else key

    def cacheable_prediction(self, key: Union[CacheKey, str]) -> bool:
        """False when the resource was found uncacheable recently."""
        k = self._k(key)
        if k in self._uncacheable:
            self._uncacheable.move_to_end(k)
            return False
        return True

    def mark_cacheable(self, key: Union[CacheKey, str]) -> bool:
        """The resource was admitted; True if it had been predicted uncacheable."""
        return self._uncacheable.pop(self._k(key), 0) is None

    def mark_uncacheable(self, key: Union[CacheKey, str], reason: NoCacheReason) -> bool:
        """Remember the resource if ``reason`` is about it; returns whether it was."""
        if reason not in _REMEMBERED:
            return False
        k = self._k(key)
        self._uncacheable[k] = None
        self._uncacheable.move_to_end(k)
        if len(self._uncacheable) > self.capacity:
            self._uncacheable.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._uncacheable)
