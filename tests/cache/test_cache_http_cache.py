"""HttpCache, the per-request state machine, driven the way the engine will drive it,
over a real MemCache and CacheLock (no engine, no sockets)."""

import asyncio
import time

import pytest

from propylon import HeaderMap, ResponseHeader
from propylon.cache import (CacheControl, CacheKey, CacheLock, CacheMetaDefaults, CachePhase, LockStatus,
                            MemCache, NoCacheReason, resp_cacheable, variance_from_vary)
from propylon.cache.http_cache import HttpCache, merge_304_header

DEFAULTS = CacheMetaDefaults(lambda s: None)


def upstream(*fields, status=200) -> ResponseHeader:
    r = ResponseHeader(status)
    for n, v in fields:
        r.append_header(n, v)
    return r


async def serve(storage, lock, path, req_headers=None, origin=None, body=b"body"):
    """One request through the cache: returns (phase, body, reason)."""
    req_headers = req_headers or HeaderMap()
    cache = HttpCache()
    cache.enable(storage, lock=lock)
    cache.set_cache_key(CacheKey("h", path))
    while True:
        hit = await cache.cache_lookup(req_headers)
        if hit is not None:
            cache.cache_found(hit)
            if cache.phase() is CachePhase.HIT:
                return cache.phase(), b"".join([c async for c in hit.body]), None
        reader = cache.lock()
        if reader is None:
            break
        status = await cache.wait_lock(reader)
        if not cache.enabled():
            break
        if status is not LockStatus.DONE:
            continue
    if cache.enabled():
        cache.cache_miss()
    await asyncio.sleep(0.01)  # the upstream answers
    resp = origin or upstream(("Cache-Control", "max-age=60"))
    if cache.enabled():
        meta = resp_cacheable(CacheControl.from_headers(resp.headers), resp, False, DEFAULTS)
        if isinstance(meta, NoCacheReason):
            cache.disable(meta)
        else:
            if resp.headers.get_all_bytes(b"vary"):
                cache.set_variance(variance_from_vary(resp.headers.get_all_bytes(b"vary"), req_headers))
            await cache.set_miss_handler(meta, len(body))
            await cache.write_body(body)
            await cache.finish_miss_handler()
    return cache.phase(), body, cache.no_cache_reason()


def test_miss_then_hit_with_counters():
    async def main():
        storage = MemCache(1 << 20)
        lock = CacheLock(5, stats=storage.stats)
        assert (await serve(storage, lock, "/a"))[0] is CachePhase.MISS
        phase, body, _ = await serve(storage, lock, "/a")
        assert phase is CachePhase.HIT and body == b"body"
        assert (storage.stats.hits, storage.stats.misses) == (1, 1)

    asyncio.run(main())


def test_uncacheable_response_disables_and_releases_lock_as_give_up():
    async def main():
        storage = MemCache(1 << 20)
        lock = CacheLock(5)
        phase, _, reason = await serve(storage, lock, "/n", origin=upstream(("Cache-Control", "no-store")))
        assert phase is CachePhase.DISABLED and reason is NoCacheReason.ORIGIN_NOT_CACHE
        assert not lock.is_locked(CacheKey("h", "/n"))
        assert (await serve(storage, lock, "/n", origin=upstream(("Cache-Control", "no-store"))))[0] is CachePhase.DISABLED

    asyncio.run(main())


def test_five_concurrent_requests_one_writer():
    async def main():
        storage = MemCache(1 << 20)
        lock = CacheLock(5, stats=storage.stats)
        results = await asyncio.gather(*(serve(storage, lock, "/c") for _ in range(5)))
        phases = [p for p, _, _ in results]
        assert phases.count(CachePhase.MISS) == 1 and phases.count(CachePhase.HIT) == 4
        assert storage.stats.lock_waits == 4

    asyncio.run(main())


def test_vary_keeps_variants_apart():
    async def main():
        storage = MemCache(1 << 20)
        origin = upstream(("Cache-Control", "max-age=60"), ("Vary", "Accept-Language"))
        en = HeaderMap.from_pairs([("Accept-Language", "en")])
        fr = HeaderMap.from_pairs([("Accept-Language", "fr")])
        assert (await serve(storage, None, "/v", en, origin, b"hello"))[0] is CachePhase.MISS
        assert (await serve(storage, None, "/v", fr, origin, b"bonjour"))[0] is CachePhase.MISS
        assert await serve(storage, None, "/v", en, origin) == (CachePhase.HIT, b"hello", None)
        assert await serve(storage, None, "/v", fr, origin) == (CachePhase.HIT, b"bonjour", None)

    asyncio.run(main())


def test_stale_entry_revalidated_by_304():
    async def main():
        storage = MemCache(1 << 20)
        key = CacheKey("h", "/r")
        first = upstream(("Cache-Control", "max-age=0"), ("ETag", '"v1"'), ("X-Old", "1"))
        await serve(storage, None, "/r", origin=first)
        cache = HttpCache()
        cache.enable(storage)
        cache.set_cache_key(key)
        hit = await cache.cache_lookup(HeaderMap())
        cache.cache_found(hit)
        assert cache.phase() is CachePhase.STALE
        not_modified = upstream(("Cache-Control", "max-age=30"), ("ETag", '"v1"'), status=304)
        merged = merge_304_header(hit.meta.header, not_modified)
        assert merged.status == 200 and merged.headers.get("cache-control") == "max-age=30"
        assert merged.headers.get("x-old") == "1"
        meta = resp_cacheable(CacheControl.from_headers(merged.headers), merged, False, DEFAULTS)
        created = hit.meta.created
        assert await cache.revalidate_cache_meta(meta)
        assert cache.phase() is CachePhase.REVALIDATED and storage.stats.revalidated == 1
        again = await storage.lookup(key)
        assert again.meta.is_fresh() and again.meta.created == created
        assert b"".join([c async for c in again.body]) == b"body"

    asyncio.run(main())


def test_max_file_size_by_content_length_and_while_streaming():
    async def main():
        storage = MemCache(1 << 20)
        lock = CacheLock(5)
        head = upstream(("Cache-Control", "max-age=60"))
        meta = resp_cacheable(CacheControl.from_headers(head.headers), head, False, DEFAULTS)
        cache = HttpCache()
        cache.enable(storage, lock=lock)
        cache.set_max_file_size_bytes(10)
        cache.set_cache_key(CacheKey("h", "/big"))
        assert await cache.cache_lookup(HeaderMap()) is None
        assert cache.lock() is None
        cache.cache_miss()
        assert await cache.set_miss_handler(meta, content_length=11) is False
        assert cache.no_cache_reason() is NoCacheReason.RESPONSE_TOO_LARGE
        assert not lock.is_locked(CacheKey("h", "/big"))

        cache = HttpCache()
        cache.enable(storage, lock=lock)
        cache.set_max_file_size_bytes(10)
        cache.set_cache_key(CacheKey("h", "/chunked"))
        cache.lock()
        cache.cache_miss()
        assert await cache.set_miss_handler(meta)
        assert await cache.write_body(b"123456")
        assert not await cache.write_body(b"123456")
        assert str(cache.no_cache_reason()) == "response too large"
        await cache.finish_miss_handler()
        assert await storage.lookup(CacheKey("h", "/chunked")) is None

    asyncio.run(main())


def test_lock_timeout_disables_with_reason():
    async def main():
        storage = MemCache(1 << 20)
        lock = CacheLock(10, wait_timeout=0.1)
        hung = lock.lock(CacheKey("h", "/hung"))
        cache = HttpCache()
        cache.enable(storage, lock=lock)
        cache.set_cache_key(CacheKey("h", "/hung"))
        assert await cache.cache_lookup(HeaderMap()) is None
        reader = cache.lock()
        t0 = time.monotonic()
        assert await cache.wait_lock(reader) is LockStatus.WAIT_TIMEOUT
        assert cache.phase() is CachePhase.DISABLED
        assert cache.no_cache_reason() is NoCacheReason.CACHE_LOCK_TIMEOUT
        assert cache.lock_duration() == pytest.approx(time.monotonic() - t0, abs=0.05)
        hung.release()

    asyncio.run(main())


def test_wrong_phase_and_double_enable_raise():
    cache = HttpCache()
    assert cache.phase() is CachePhase.DISABLED and not cache.enabled()
    assert cache.no_cache_reason() is NoCacheReason.NEVER_ENABLED
    with pytest.raises(RuntimeError, match="cache_miss"):
        cache.cache_miss()
    cache.enable(MemCache(1 << 20))
    with pytest.raises(RuntimeError, match="enable"):
        cache.enable(MemCache(1 << 20))
    cache.set_cache_key(CacheKey("h", "/"))
    cache.bypass()
    assert cache.phase() is CachePhase.BYPASS and not cache.enabled()


def test_predictor_lets_known_uncacheable_requests_skip_the_lock():
    from propylon.cache import Predictor

    async def main():
        storage = MemCache(1 << 20)
        lock = CacheLock(5, stats=storage.stats)
        predictor = Predictor(capacity=2)
        key = CacheKey("h", "/no_store")

        def new_cache():
            cache = HttpCache()
            cache.enable(storage, predictor=predictor, lock=lock)
            cache.set_cache_key(CacheKey("h", "/no_store"))
            return cache

        first = new_cache()
        assert first.lock() is None and first.is_writer()
        second = new_cache()
        assert second.lock() is not None  # unknown yet: it would wait for the first
        first.cache_miss()
        first.disable(NoCacheReason.ORIGIN_NOT_CACHE)
        assert not predictor.cacheable_prediction(key)
        third = new_cache()
        assert third.lock() is None and not third.is_writer()  # goes upstream unlocked
        # Transient reasons are not remembered; admission clears the prediction.
        assert not predictor.mark_uncacheable(CacheKey("h", "/x"), NoCacheReason.UPSTREAM_ERROR)
        assert predictor.mark_cacheable(key) and predictor.cacheable_prediction(key)
        # Bounded: the least recently marked go first.
        for p in ("/a", "/b", "/c"):
            predictor.mark_uncacheable(CacheKey("h", p), NoCacheReason.RESPONSE_TOO_LARGE)
        assert len(predictor) == 2 and predictor.cacheable_prediction(CacheKey("h", "/a"))

    asyncio.run(main())
