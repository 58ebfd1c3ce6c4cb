"""``MemCache``: entries in this process's memory, bounded in bytes, LRU eviction.

Every operation is O(1) except purges by tag or prefix (proportional to what they
select, or for a prefix to the number of primary keys). The accounted size of an entry
is its key, its serialised meta, its body and a fixed per-entry overhead for the Python
objects holding them, so ``max_bytes`` tracks real memory closely; the bound holds
after every store. Each worker process has its own ``MemCache``; keep several in step
with :class:`~propylon.cache.PurgeBroadcast`.

The :class:`CacheMeta` a hit returns is the stored object: treat it as read-only (copy
its header before changing it for a client).
"""

from __future__ import annotations

from typing import Optional

from .eviction import EvictionManager, LruEviction
from .key import CacheKey
from .meta import CacheMeta
from .stats import CacheStats
from .storage import BytesHit, CacheHit, Fill, LocalIndex, Storage

__all__ = ["MemCache"]

# Python objects per entry: the dict slots, the entry tuple, bytes headers, the meta
# dataclass, its header map and field tuples (measured with tracemalloc, rounded up).
ENTRY_OVERHEAD = 512


class MemCache(Storage):
    """In-memory storage.

    Args:
        max_bytes: the byte budget for all entries (keys, metas, bodies, overhead).
        max_object_bytes: the largest body stored (default: an eighth of ``max_bytes``).
        eviction: the eviction manager (default: :class:`LruEviction` over ``max_bytes``).
        stats: counters to update (default: a new :class:`CacheStats`).
    """

    def __init__(self, max_bytes: int, *, max_object_bytes: Optional[int] = None,
                 eviction: Optional[EvictionManager] = None, stats: Optional[CacheStats] = None) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        super().__init__(max_object_bytes or max(1, max_bytes // 8), stats)
        self.max_bytes = max_bytes
        self.eviction = eviction if eviction is not None else LruEviction(max_bytes)
        # combined -> (meta, body or None for a Vary record, accounted size)
        self._data: dict[str, tuple[CacheMeta, Optional[bytes], int]] = {}
        self._index = LocalIndex()

    def __len__(self) -> int:
        return len(self._data)

    async def _load(self, key: CacheKey) -> Optional[CacheHit]:
        return self._load_now(key)

    def _load_now(self, key: CacheKey) -> Optional[CacheHit]:
        c = key.combined()
        entry = self._data.get(c)
        if entry is None:
            return None
        self.eviction.access(c)
        meta, body = entry[0], entry[1]
        if body is None:
            return CacheHit(meta, None)
        return CacheHit(meta, BytesHit(body))

    async def _commit(self, fill: Fill) -> None:
        key, meta = fill.key, fill.meta
        body = b"".join(fill.chunks)
        meta.body_len = len(body)
        tags = meta.tags()
        self._put(key.combined(), key, meta, body, tags)
        if key.variance is not None:
            # The primary key's record: the head of the latest variant, so a lookup
            # without variance learns which request fields select the variant.
            self._put(key.primary_hash(), key, meta, None, tags)

    def _put(self, c: str, key: CacheKey, meta: CacheMeta, body: Optional[bytes], tags: list[bytes]) -> None:
        size = len(c) + len(meta.to_bytes()) + (len(body) if body is not None else 0) + ENTRY_OVERHEAD
        self._drop(c, evicted=False)
        self._data[c] = (meta, body, size)
        self._index.add(c, key, tags)
        self.stats.bytes_stored += size
        self.stats.entries += 1
        for victim in self.eviction.admit(c, size):
            self._drop(victim, evicted=True)

    def _drop(self, c: str, evicted: bool) -> bool:
        entry = self._data.pop(c, None)
        if entry is None:
            return False
        if not evicted:
            self.eviction.remove(c)
        else:
            self.stats.evictions += 1
        self._index.remove(c)
        self.stats.bytes_stored -= entry[2]
        self.stats.entries -= 1
        return True

    async def _purge_primary(self, primary_hash: str) -> bool:
        removed = False
        for c in self._index.of_primary(primary_hash):
            removed = self._drop(c, evicted=False) or removed
        return removed

    async def _purge_tag(self, tag: bytes) -> int:
        return sum(self._drop(c, evicted=False) for c in self._index.of_tag(tag))

    async def _purge_prefix(self, prefix: str, namespace: Optional[str]) -> int:
        n = 0
        for p in self._index.of_prefix(prefix, namespace):
            n += await self._purge_primary(p)
        return n

    async def _update_meta(self, key: CacheKey, meta: CacheMeta) -> bool:
        c = key.combined()
        entry = self._data.get(c)
        if entry is None or entry[1] is None:
            return False
        meta.body_len = len(entry[1])
        self._put(c, key, meta, entry[1], meta.tags())
        return c in self._data
