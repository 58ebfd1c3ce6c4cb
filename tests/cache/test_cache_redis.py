"""RedisCache and PurgeBroadcast against a real redis-server on a free loopback port."""

import asyncio
import logging

from cache_support import fill, meta_for, read_all
from propylon.cache import CacheKey, MemCache, PurgeBroadcast, RedisCache


def test_two_instances_share_entries_and_purges(redis_server):
    async def main():
        a = RedisCache(redis_server.url, timeout=2)
        b = RedisCache(redis_server.url, timeout=2)
        key = CacheKey("h", "/shared")
        await fill(a, key, b"from a", ("Cache-Tag", "t"))
        hit = await b.lookup(CacheKey("h", "/shared"))
        assert hit is not None and await read_all(hit) == b"from a"
        assert await b.purge(key) is True
        assert await a.lookup(key) is None
        # Tags and prefixes work across instances too.
        await fill(a, CacheKey("h", "/x/1"), b"1", ("Cache-Tag", "t"))
        await fill(a, CacheKey("h", "/x/2"), b"2")
        assert await b.purge_tag(b"t") == 1
        assert await b.purge_prefix("/x/", "h") == 1
        assert await a.lookup(CacheKey("h", "/x/2")) is None
        await a.aclose()
        await b.aclose()

    asyncio.run(main())


def test_entries_expire_in_redis(redis_server):
    async def main():
        cache = RedisCache(redis_server.url, timeout=2, grace=0)
        key = CacheKey("h", "/ttl")
        handler = await cache.get_miss_handler(key, meta_for(60))
        await handler.write_body(b"x")
        await handler.finish()
        ttl = await cache.client.ttl(b"propylon:cache:e:" + key.combined().encode())
        assert 55 <= ttl <= 61
        await cache.aclose()

    asyncio.run(main())


def test_redis_down_means_misses_and_one_warning(redis_server, caplog):
    caplog.set_level(logging.INFO, logger="propylon.cache")

    async def main():
        cache = RedisCache(redis_server.url, timeout=0.5, retry_after=0.2)
        key = CacheKey("h", "/k")
        await fill(cache, key, b"cached")
        assert await cache.lookup(key) is not None
        redis_server.stop()
        for i in range(20):
            assert await cache.lookup(key) is None  # behaves as a miss
            await fill(cache, CacheKey("h", f"/new/{i}"), b"skipped")  # write skipped, no error
            assert await cache.purge(key) is False
            await asyncio.sleep(0.02)
        assert not cache.available
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "Redis unreachable" in warnings[0].getMessage()
        redis_server.start()  # same port, empty data
        await asyncio.sleep(0.25)
        assert await cache.lookup(key) is None
        await fill(cache, key, b"again")
        assert await read_all(await cache.lookup(key)) == b"again"
        assert cache.available
        infos = [r for r in caplog.records if r.levelno == logging.INFO and "reachable again" in r.getMessage()]
        assert len(infos) == 1
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        await cache.aclose()

    asyncio.run(main())


def test_pubsub_purge_reaches_another_memcache(redis_server):
    async def main():
        mem_a, mem_b = MemCache(1 << 20), MemCache(1 << 20)
        a = PurgeBroadcast(mem_a, url=redis_server.url, poll=0.1)
        b = PurgeBroadcast(mem_b, url=redis_server.url, poll=0.1)
        await a.start()
        await b.start()
        for mem in (mem_a, mem_b):
            await fill(mem, CacheKey("h", "/page"), b"p", ("Cache-Tag", "news"))
            await fill(mem, CacheKey("h", "/img/1"), b"i")
            await fill(mem, CacheKey("h", "/other"), b"o", ("Surrogate-Key", "misc"))

        async def until(cond):
            for _ in range(200):
                if await cond():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("purge did not arrive")

        assert await a.purge(CacheKey("h", "/page")) is True
        assert await mem_a.lookup(CacheKey("h", "/page")) is None
        await until(lambda: _absent(mem_b, "/page"))
        assert await b.purge_prefix("/img/") == 1
        await until(lambda: _absent(mem_a, "/img/1"))
        assert await a.purge_tag("misc") == 1
        await until(lambda: _absent(mem_b, "/other"))
        assert (a.received, b.received) == (1, 2)
        await a.aclose()
        await b.aclose()

    asyncio.run(main())


async def _absent(mem, path):
    return await mem.lookup(CacheKey("h", path)) is None


def test_pubsub_resubscribes_after_redis_restarts(redis_server, caplog):
    caplog.set_level(logging.INFO, logger="propylon.cache")

    async def main():
        mem_a, mem_b = MemCache(1 << 20), MemCache(1 << 20)
        a = PurgeBroadcast(mem_a, url=redis_server.url, poll=0.1, retry_after=0.1)
        b = PurgeBroadcast(mem_b, url=redis_server.url, poll=0.1, retry_after=0.1)
        await a.start()
        await b.start()
        redis_server.stop()
        for _ in range(100):
            if any("lost its subscription" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.02)
        redis_server.start()
        for _ in range(200):
            if sum("subscribed again" in r.getMessage() for r in caplog.records) == 2:
                break
            await asyncio.sleep(0.02)
        await fill(mem_b, CacheKey("h", "/after"), b"x")
        await a.purge(CacheKey("h", "/after"))
        for _ in range(200):
            if await _absent(mem_b, "/after"):
                break
            await asyncio.sleep(0.01)
        assert await _absent(mem_b, "/after")
        lost = [r for r in caplog.records if "lost its subscription" in r.getMessage()]
        assert len(lost) == 2  # one warning per listener for the whole outage
        await a.aclose()
        await b.aclose()

    asyncio.run(main())
