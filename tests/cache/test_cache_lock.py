"""CacheLock: one writer per key, readers wait in order and then read what it wrote;
timeouts send readers away; counters for waits and timeouts."""

import asyncio
import gc
import time

from cache_support import meta_for, read_all
from propylon.cache import CacheKey, CacheLock, LockStatus, MemCache, ReadLock, WritePermit


def test_one_writer_readers_wait_then_stream_the_fill():
    async def main():
        storage = MemCache(1 << 20)
        lock = CacheLock(age_timeout=5, stats=storage.stats)
        key = CacheKey("h", "/slow")
        order = []

        async def request(i):
            while True:
                hit = await storage.lookup(key)
                if hit is not None:
                    order.append(i)
                    return "reader", await read_all(hit)
                l = lock.lock(key)
                if isinstance(l, WritePermit):
                    await asyncio.sleep(0.05)  # the upstream's head arrives
                    handler = await storage.get_miss_handler(key, meta_for(60))
                    l.release(LockStatus.DONE)  # readers now stream the fill
                    for part in (b"a", b"b", b"c"):
                        await handler.write_body(part)
                        await asyncio.sleep(0.02)
                    await handler.finish()
                    return "writer", b"abc"
                status = await l.wait()
                assert status is LockStatus.DONE

        results = await asyncio.gather(*(request(i) for i in range(5)))
        roles = [r for r, _ in results]
        assert roles.count("writer") == 1 and roles.count("reader") == 4
        assert all(body == b"abc" for _, body in results)
        assert order == sorted(order)  # woken in the order they arrived
        assert storage.stats.lock_waits == 4 and storage.stats.lock_timeouts == 0
        assert not lock.is_locked(key)

    asyncio.run(main())


def test_wait_timeout_sends_readers_upstream():
    async def main():
        lock = CacheLock(age_timeout=10, wait_timeout=0.2)
        permit = lock.lock("k")  # a hung writer never releases
        assert isinstance(permit, WritePermit)
        readers = [lock.lock("k") for _ in range(3)]
        assert all(isinstance(r, ReadLock) for r in readers)
        t0 = time.monotonic()
        statuses = await asyncio.gather(*(r.wait() for r in readers))
        waited = time.monotonic() - t0
        assert statuses == [LockStatus.WAIT_TIMEOUT] * 3
        assert 0.15 < waited < 2
        assert lock.stats.lock_waits == 3 and lock.stats.lock_timeouts == 3
        permit.release()

    asyncio.run(main())


def test_age_timeout_lets_a_new_writer_in():
    async def main():
        lock = CacheLock(age_timeout=0.2)
        old = lock.lock("k")
        reader = lock.lock("k")
        assert await reader.wait() is LockStatus.AGE_TIMEOUT
        new = lock.lock("k")  # the hung writer no longer blocks
        assert isinstance(new, WritePermit)
        waiting = lock.lock("k")
        assert isinstance(waiting, ReadLock)
        old.release(LockStatus.DONE)  # too late: ignored for the new writer
        assert lock.is_locked("k")
        task = asyncio.create_task(waiting.wait())
        await asyncio.sleep(0.01)
        new.release(LockStatus.GIVE_UP)
        assert await task is LockStatus.GIVE_UP
        assert not lock.is_locked("k")

    asyncio.run(main())


def test_statuses_reach_every_reader_and_release_is_idempotent():
    async def main():
        lock = CacheLock(age_timeout=5)
        permit = lock.lock("k")
        readers = [lock.lock("k") for _ in range(3)]
        woken = []

        async def wait(i, reader):
            status = await reader.wait()
            woken.append(i)
            return status

        # Start waiting in the order 2, 0, 1: they are woken in that order.
        tasks = []
        for i in (2, 0, 1):
            tasks.append(asyncio.create_task(wait(i, readers[i])))
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        permit.release(LockStatus.TRANSIENT_ERROR)
        permit.release(LockStatus.DONE)
        assert await asyncio.gather(*tasks) == [LockStatus.TRANSIENT_ERROR] * 3
        assert woken == [2, 0, 1]
        # After release the next caller writes; a reader arriving late sees the status at once.
        assert isinstance(lock.lock("k"), WritePermit)
        assert await readers[0].wait() is LockStatus.TRANSIENT_ERROR

    asyncio.run(main())


def test_dropped_permit_wakes_readers_as_dangling():
    async def main():
        lock = CacheLock(age_timeout=5)
        permit = lock.lock("k")
        reader = lock.lock("k")
        task = asyncio.create_task(reader.wait())
        await asyncio.sleep(0.01)
        del permit
        gc.collect()
        assert await asyncio.wait_for(task, 1) is LockStatus.DANGLING

    asyncio.run(main())
