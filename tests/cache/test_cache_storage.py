"""Behaviour every storage shares (MemCache, DiskCache, RedisCache against a real
redis-server): streaming fills, abandoned fills, Vary variants, purges, 304 updates."""

import asyncio
import gc

import pytest

from cache_support import fill, meta_for, read_all
from propylon import HeaderMap
from propylon.cache import (CacheKey, DiskCache, FillAbandoned, MemCache, ObjectTooLarge, RedisCache,
                            variance_from_vary)

KINDS = ["mem", "disk", "redis"]


@pytest.fixture(params=KINDS)
def make_storage(request, tmp_path):
    """A factory: each call is a new storage instance over the same backing store
    (the caller closes what it makes)."""
    def make(**kw):
        kw.setdefault("max_object_bytes", 4 << 20)
        if request.param == "mem":
            s = MemCache(64 << 20, **kw)
        elif request.param == "disk":
            s = DiskCache(str(tmp_path / "cache"), 64 << 20, **kw)
        else:
            server = request.getfixturevalue("redis_server")
            s = RedisCache(server.url, timeout=2, **kw)
        return s

    return make


def run(coro):
    return asyncio.run(coro)


def test_miss_then_fill_then_hit(make_storage):
    async def main():
        s = make_storage()
        key = CacheKey("h", "/a")
        assert await s.lookup(key) is None
        body = bytes(range(256)) * 1000
        await fill(s, key, body, ("Content-Type", "application/octet-stream"))
        hit = await s.lookup(CacheKey("h", "/a"))
        assert hit.complete
        assert hit.meta.header.headers.get("content-type") == "application/octet-stream"
        assert await read_all(hit) == body
        await s.aclose()
    run(main())


def test_streaming_reader_sees_chunks_before_the_fill_ends(make_storage):
    async def main():
        s = make_storage()
        key = CacheKey("h", "/slow")
        handler = await s.get_miss_handler(key, meta_for(60))
        await handler.write_body(b"first ")
        hit = await s.lookup(key)
        assert hit is not None and not hit.complete
        got = []
        first_seen = asyncio.Event()

        async def reader():
            async for chunk in hit.body:
                got.append(chunk)
                first_seen.set()

        task = asyncio.create_task(reader())
        # The reader gets the first chunk while the fill is still open.
        await asyncio.wait_for(first_seen.wait(), 2)
        assert got == [b"first "] and not task.done()
        # A second reader arriving mid-fill starts from the beginning.
        late = await s.lookup(key)
        late_task = asyncio.create_task(read_all(late))
        await handler.write_body(b"second")
        await asyncio.sleep(0)
        assert got == [b"first ", b"second"] and not task.done()
        await handler.finish()
        await asyncio.wait_for(task, 2)
        assert b"".join(got) == b"first second"
        assert await asyncio.wait_for(late_task, 2) == b"first second"
        hit = await s.lookup(key)
        assert hit.complete and await read_all(hit) == b"first second"
        await s.aclose()
    run(main())


def test_abandoned_fill_never_visible_as_complete(make_storage):
    async def main():
        s = make_storage()
        key = CacheKey("h", "/dies")
        handler = await s.get_miss_handler(key, meta_for(60))
        await handler.write_body(b"partial")
        hit = await s.lookup(key)
        reader = asyncio.create_task(read_all(hit))
        await asyncio.sleep(0)
        handler.abandon()  # upstream died mid-body
        with pytest.raises(FillAbandoned):
            await asyncio.wait_for(reader, 2)
        assert await s.lookup(key) is None
        handler.abandon()  # idempotent
        # A new storage instance over the same backing store has nothing either.
        other = make_storage()
        assert await other.lookup(key) is None
        await other.aclose()
        await s.aclose()
    run(main())


def test_abandoned_refresh_falls_back_to_the_stored_entry(make_storage):
    async def main():
        s = make_storage()
        key = CacheKey("h", "/r")
        await fill(s, key, b"old")
        handler = await s.get_miss_handler(key, meta_for(60, ("X-V", "new")))
        await handler.write_body(b"ne")
        assert (await s.lookup(key)).meta.header.headers.get("x-v") == "new"
        handler.abandon()
        hit = await s.lookup(key)
        assert hit.complete and await read_all(hit) == b"old"
        await s.aclose()
    run(main())


def test_object_too_large_abandons(make_storage):
    async def main():
        s = make_storage(max_object_bytes=10)
        key = CacheKey("h", "/big")
        handler = await s.get_miss_handler(key, meta_for(60))
        await handler.write_body(b"12345")
        with pytest.raises(ObjectTooLarge):
            await handler.write_body(b"678901")
        assert await s.lookup(key) is None
        await s.aclose()
    run(main())


def test_vary_variants_and_one_purge_removes_all(make_storage):
    async def main():
        s = make_storage()
        vary = [b"Accept-Encoding"]
        for enc in ("gzip", "br"):
            key = CacheKey("h", "/v")
            key.set_variance(variance_from_vary(vary, HeaderMap.from_pairs([("Accept-Encoding", enc)])))
            await fill(s, key, enc.encode(), ("Vary", "Accept-Encoding"))
        # A lookup without variance finds the Vary record, then each variant by its own key.
        record = await s.lookup(CacheKey("h", "/v"))
        assert record is not None and record.body is None
        names = record.meta.header.headers.get_all_bytes(b"vary")
        for enc in ("gzip", "br"):
            key = CacheKey("h", "/v")
            key.set_variance(variance_from_vary(names, HeaderMap.from_pairs([("Accept-Encoding", enc)])))
            assert await read_all(await s.lookup(key)) == enc.encode()
        other = CacheKey("h", "/v")
        other.set_variance(variance_from_vary(names, HeaderMap.from_pairs([("Accept-Encoding", "zstd")])))
        assert await s.lookup(other) is None
        assert await s.purge(CacheKey("h", "/v")) is True
        assert await s.purge(CacheKey("h", "/v")) is False
        for enc in ("gzip", "br"):
            key = CacheKey("h", "/v")
            key.set_variance(variance_from_vary(names, HeaderMap.from_pairs([("Accept-Encoding", enc)])))
            assert await s.lookup(key) is None
        assert await s.lookup(CacheKey("h", "/v")) is None
        await s.aclose()
    run(main())


def test_purge_by_tag_and_by_prefix(make_storage):
    async def main():
        s = make_storage()
        await fill(s, CacheKey("shop", "/products/1"), b"p1", ("Cache-Tag", "product-1, catalogue"))
        await fill(s, CacheKey("shop", "/products/2"), b"p2", ("Surrogate-Key", "product-2 catalogue"))
        await fill(s, CacheKey("shop", "/about"), b"about", ("Cache-Tag", "static"))
        await fill(s, CacheKey("blog", "/products/1"), b"blog", ("Cache-Tag", "blog"))
        assert await s.purge_tag(b"product-1") == 1
        assert await s.lookup(CacheKey("shop", "/products/1")) is None
        assert await s.lookup(CacheKey("shop", "/products/2")) is not None
        assert await s.purge_tag("catalogue") == 1  # product-1 is already gone
        assert await s.lookup(CacheKey("shop", "/products/2")) is None
        await fill(s, CacheKey("shop", "/products/3"), b"p3")
        await fill(s, CacheKey("shop", "/products/4"), b"p4")
        assert await s.purge_prefix("/products/", namespace="shop") == 2
        assert await s.lookup(CacheKey("shop", "/products/3")) is None
        assert await s.lookup(CacheKey("blog", "/products/1")) is not None  # other namespace
        assert await s.lookup(CacheKey("shop", "/about")) is not None
        assert await s.purge_prefix("/products/") == 1  # any namespace
        assert await s.lookup(CacheKey("blog", "/products/1")) is None
        assert await s.purge_tag(b"nothing") == 0
        await s.aclose()
    run(main())


def test_purge_during_fill_keeps_readers_but_stores_nothing(make_storage):
    async def main():
        s = make_storage()
        key = CacheKey("h", "/p")
        handler = await s.get_miss_handler(key, meta_for(60))
        await handler.write_body(b"a")
        hit = await s.lookup(key)
        reader = asyncio.create_task(read_all(hit))
        assert await s.purge(key) is True
        await handler.write_body(b"b")
        await handler.finish()
        assert await asyncio.wait_for(reader, 2) == b"ab"
        assert await s.lookup(key) is None
        await s.aclose()
    run(main())


def test_update_meta_after_304(make_storage):
    async def main():
        s = make_storage()
        key = CacheKey("h", "/reval")
        await fill(s, key, b"body", ("ETag", '"v1"'))
        stored = (await s.lookup(key)).meta
        new = meta_for(500, ("ETag", '"v1"'), ("X-Checked", "yes"))
        new.created = stored.created
        assert await s.update_meta(key, new) is True
        hit = await s.lookup(key)
        assert hit.meta.header.headers.get("x-checked") == "yes"
        assert hit.meta.fresh_until == pytest.approx(new.fresh_until)
        assert hit.meta.created == stored.created
        assert await read_all(hit) == b"body"
        assert await s.update_meta(CacheKey("h", "/absent"), meta_for(5)) is False
        await s.aclose()
    run(main())


def test_a_variant_filling_tells_primary_lookups_that_the_resource_varies(make_storage):
    async def main():
        s = make_storage()
        vary = [b"Accept-Encoding"]
        gzip = HeaderMap.from_pairs([("Accept-Encoding", "gzip")])
        key = CacheKey("h", "/vf")
        key.set_variance(variance_from_vary(vary, gzip))
        handler = await s.get_miss_handler(key, meta_for(60, ("Vary", "Accept-Encoding")))
        await handler.write_body(b"zipped")
        record = await s.lookup(CacheKey("h", "/vf"))
        assert record is not None and record.body is None
        mine = CacheKey("h", "/vf")
        mine.set_variance(variance_from_vary(record.meta.header.headers.get_all_bytes(b"vary"), gzip))
        hit = await s.lookup(mine)
        assert not hit.complete
        reader = asyncio.create_task(read_all(hit))
        await handler.finish()
        assert await asyncio.wait_for(reader, 2) == b"zipped"
        assert (await s.lookup(CacheKey("h", "/vf"))).body is None  # now the stored record
        await s.aclose()
    run(main())


def test_a_vanished_writer_fails_its_readers(make_storage):
    async def main():
        s = make_storage()
        key = CacheKey("h", "/gone")

        async def writer():
            handler = await s.get_miss_handler(key, meta_for(60))
            await handler.write_body(b"half")
            raise RuntimeError("the writer's request failed without cleaning up")

        w = asyncio.create_task(writer())
        await asyncio.sleep(0)
        hit = await s.lookup(key)
        reader = asyncio.create_task(read_all(hit))
        with pytest.raises(RuntimeError):
            await w
        del w
        gc.collect()
        with pytest.raises(FillAbandoned):
            await asyncio.wait_for(reader, 2)
        assert await s.lookup(key) is None
        await s.aclose()
    run(main())
