"""MemCache: the byte bound holds while 1 GiB of distinct objects pass, LRU order, accounting."""

import asyncio

from cache_support import fill, read_all
from propylon.cache import CacheKey, LruEviction, MemCache
from propylon.cache.memory import ENTRY_OVERHEAD

MB = 1 << 20


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_one_gib_through_64_mib():
    object_size = 64 * 1024
    count = (1 << 30) // object_size  # 16384 distinct objects, 1 GiB in all

    async def main():
        cache = MemCache(64 * MB)
        rss_before = _rss_bytes()
        peak = 0
        for i in range(count):
            # Generated per object and dropped after the store: the test holds one at a time.
            await fill(cache, CacheKey("n", f"/obj/{i}"), i.to_bytes(4, "big") * (object_size // 4))
            assert cache.stats.bytes_stored <= 64 * MB
            if i % 1024 == 0:
                peak = max(peak, _rss_bytes())
            if i % 512 == 0:
                # Keep one early object in use: LRU must keep it while newer ones go.
                hit = await cache.lookup(CacheKey("n", "/obj/0"))
                assert hit is not None
        return cache, peak - rss_before

    cache, rss_growth = asyncio.run(main())
    stats = cache.stats
    per_entry = object_size + ENTRY_OVERHEAD + 32 + len(b"") + 60  # body + overhead + key + meta
    assert stats.bytes_stored <= 64 * MB
    assert stats.bytes_stored == cache.eviction.total_bytes
    assert stats.entries == len(cache) == cache.eviction.total_items
    assert 64 * MB - per_entry <= stats.bytes_stored  # full, not over-evicted
    assert stats.evictions == count - stats.entries
    assert rss_growth < 160 * MB, rss_growth

    async def check():
        # The most recent objects are all there, the oldest gone; /obj/0 survived by use.
        newest = [await cache.lookup(CacheKey("n", f"/obj/{i}")) for i in range(count - 900, count)]
        assert all(h is not None for h in newest)
        assert await cache.lookup(CacheKey("n", "/obj/1")) is None
        assert await cache.lookup(CacheKey("n", f"/obj/{count // 2}")) is None
        assert await cache.lookup(CacheKey("n", "/obj/0")) is not None

    asyncio.run(check())


def test_least_recently_used_go_first():
    async def main():
        entry = 10_000
        cache = MemCache(4 * (entry + 1000) + 500, max_object_bytes=entry)  # room for 4
        keys = [CacheKey("n", f"/{i}") for i in range(5)]
        for k in keys[:4]:
            await fill(cache, k, b"x" * entry)
        # Use 0 and 2; then two more entries evict the two least recently used: 1 then 3.
        await read_all(await cache.lookup(keys[0]))
        await read_all(await cache.lookup(keys[2]))
        await fill(cache, keys[4], b"x" * entry)
        await fill(cache, CacheKey("n", "/5"), b"x" * entry)
        assert cache.eviction.lru_keys()[-1] == CacheKey("n", "/5").combined()
        present = [await cache.lookup(k) is not None for k in keys]
        assert present == [True, False, True, False, True]
        assert cache.stats.evictions == 2

    asyncio.run(main())


def test_accounting_counts_key_meta_and_body_and_purge_returns_it():
    async def main():
        cache = MemCache(1 * MB)
        key = CacheKey("n", "/a")
        await fill(cache, key, b"y" * 1000, ("Content-Type", "text/plain"))
        hit = await cache.lookup(key)
        expected = len(key.combined()) + len(hit.meta.to_bytes()) + 1000 + ENTRY_OVERHEAD
        assert cache.stats.bytes_stored == expected
        # Replacing an entry does not count it twice.
        await fill(cache, key, b"z" * 10, ("Content-Type", "text/plain"))
        assert cache.stats.bytes_stored == expected - 990 and cache.stats.entries == 1
        assert await cache.purge(key)
        assert cache.stats.bytes_stored == 0 and cache.stats.entries == 0 and cache.eviction.total_bytes == 0

    asyncio.run(main())


def test_lru_eviction_manager_alone():
    lru = LruEviction(100)
    assert lru.admit("a", 40) == []
    assert lru.admit("b", 40) == []
    assert lru.access("a")
    assert lru.admit("c", 40) == ["b"]
    assert lru.admit("huge", 500) == ["a", "c", "huge"]
    assert lru.total_bytes == 0 and lru.total_items == 0
    assert not lru.access("b")
