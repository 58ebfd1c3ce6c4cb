"""DiskCache: entries survive a restart (a new instance scans the directory), the byte
bound holds, partial files never become entries, large bodies stream from the file."""

import asyncio
import os

import pytest

from cache_support import fill, read_all
from propylon.cache import CacheKey, DiskCache, LruEviction


def test_restart_finds_entries_and_tags(tmp_path):
    root = str(tmp_path / "c")
    big = os.urandom(1 << 20)  # past the inline I/O size: written and read in threads

    async def first():
        cache = DiskCache(root, 64 << 20)
        await fill(cache, CacheKey("h", "/small"), b"hello", ("Cache-Tag", "t1"))
        await fill(cache, CacheKey("h", "/big"), big, ("Cache-Tag", "t2"))
        return cache.stats.bytes_stored

    stored = asyncio.run(first())

    async def second():
        cache = DiskCache(root, 64 << 20)  # a new process would do the same scan
        assert cache.stats.entries == 2 and cache.stats.bytes_stored == stored
        hit = await cache.lookup(CacheKey("h", "/small"))
        assert await read_all(hit) == b"hello"
        hit = await cache.lookup(CacheKey("h", "/big"))
        assert hit.meta.body_len == len(big)
        assert await read_all(hit) == big
        # Tags were rebuilt from the stored metas.
        assert await cache.purge_tag(b"t2") == 1
        assert await cache.lookup(CacheKey("h", "/big")) is None
        assert await cache.purge_prefix("/sm") == 1

    asyncio.run(second())
    assert [f for _, _, files in os.walk(root) for f in files] == []  # purges deleted the files


def test_large_body_seek_reads_a_range(tmp_path):
    body = bytes(range(256)) * 4096  # 1 MiB

    async def main():
        cache = DiskCache(str(tmp_path), 64 << 20)
        key = CacheKey("h", "/r")
        await fill(cache, key, body, chunk=100_000)
        hit = await cache.lookup(key)
        assert hit.body.can_seek()
        hit.body.seek(300_000, 700_000)
        assert await read_all(hit) == body[300_000:700_001]

    asyncio.run(main())


def test_size_bound_holds_and_oldest_go_first(tmp_path):
    root = str(tmp_path / "c")

    async def main():
        cache = DiskCache(root, 1 << 20, max_object_bytes=100_000)
        for i in range(40):
            await fill(cache, CacheKey("h", f"/{i}"), bytes([i]) * 90_000)
            assert cache.stats.bytes_stored <= 1 << 20
        on_disk = sum(os.path.getsize(os.path.join(dp, f))
                      for dp, _, files in os.walk(root) for f in files)
        assert on_disk == cache.stats.bytes_stored <= 1 << 20
        assert cache.stats.evictions == 40 - cache.stats.entries
        assert await cache.lookup(CacheKey("h", "/0")) is None
        assert await read_all(await cache.lookup(CacheKey("h", "/39"))) == bytes([39]) * 90_000
        return cache.stats.entries

    entries = asyncio.run(main())
    # A restart with a smaller budget evicts down to it, oldest files first.
    cache = DiskCache(root, 400_000, eviction=LruEviction(400_000))
    assert cache.stats.bytes_stored <= 400_000 and 0 < cache.stats.entries < entries

    async def newest_kept():
        assert await cache.lookup(CacheKey("h", "/39")) is not None

    asyncio.run(newest_kept())


def test_partial_and_foreign_files_dropped_at_start(tmp_path):
    root = str(tmp_path / "c")

    async def main():
        cache = DiskCache(root, 1 << 20)
        await fill(cache, CacheKey("h", "/ok"), b"ok")
        await fill(cache, CacheKey("h", "/cut"), b"x" * 5000)

    asyncio.run(main())
    cut = CacheKey("h", "/cut").combined()
    path = os.path.join(root, cut[:2], cut)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 1)  # a torn write after a crash
    with open(os.path.join(root, "tmp", "leftover"), "wb") as f:
        f.write(b"half a file")
    os.makedirs(os.path.join(root, "zz"), exist_ok=True)
    with open(os.path.join(root, "zz", "junk"), "wb") as f:
        f.write(b"not ours")

    cache = DiskCache(root, 1 << 20)
    assert cache.stats.entries == 1
    assert not os.path.exists(path) and os.listdir(os.path.join(root, "tmp")) == []

    async def check():
        assert await cache.lookup(CacheKey("h", "/cut")) is None
        assert await read_all(await cache.lookup(CacheKey("h", "/ok"))) == b"ok"

    asyncio.run(check())


def test_abandoned_fill_leaves_no_file(tmp_path):
    root = str(tmp_path / "c")

    async def main():
        from cache_support import meta_for

        cache = DiskCache(root, 1 << 20)
        handler = await cache.get_miss_handler(CacheKey("h", "/x"), meta_for(60))
        await handler.write_body(b"partial")
        handler.abandon()

    asyncio.run(main())
    assert all(not files for dp, _, files in os.walk(root))
    assert DiskCache(root, 1 << 20).stats.entries == 0


def test_failed_store_still_gives_readers_the_whole_body(tmp_path):
    root = tmp_path / "c"

    async def main():
        from cache_support import meta_for

        from propylon.cache import StorageError

        cache = DiskCache(str(root), 1 << 20)
        key = CacheKey("h", "/x")
        handler = await cache.get_miss_handler(key, meta_for(60))
        await handler.write_body(b"whole")
        reader = asyncio.create_task(read_all(await cache.lookup(key)))
        # The disk refuses the write (a file where the temp directory should be; a mode
        # change would not stop root).
        os.rmdir(root / "tmp")
        (root / "tmp").write_bytes(b"")
        with pytest.raises(StorageError, match="cannot write cache file"):
            await handler.finish()
        assert await asyncio.wait_for(reader, 2) == b"whole"
        assert await cache.lookup(key) is None

    asyncio.run(main())
