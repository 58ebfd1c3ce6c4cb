"""Inflight: exact counts; each guard gives back its claim exactly once."""

import asyncio

import pytest

from propylon.limits import Guard, Inflight


def test_counts_and_release():
    inflight = Inflight()
    g1, c1 = inflight.incr("k")
    g2, c2 = inflight.incr("k", 2)
    assert (c1, c2) == (1, 3)
    assert inflight.get("k") == 3 and inflight.get("other") == 0
    g2.release()
    assert inflight.get("k") == 1
    g1.release()
    assert inflight.get("k") == 0
    assert len(inflight) == 0  # keys with nothing in flight are dropped


def test_release_is_idempotent():
    inflight = Inflight()
    guard, _ = inflight.incr("k")
    _, _ = inflight.incr("k")
    guard.release()
    guard.release()
    guard.release()
    assert guard.released
    assert inflight.get("k") == 1


def test_guard_incr_is_not_undone_by_release():
    inflight = Inflight()
    guard, count = inflight.incr("k", 2)
    assert guard.incr() == 4  # adds the guard's value again
    assert guard.get() == 4
    guard.release()
    assert inflight.get("k") == 2


def test_with_block_releases_on_exception():
    inflight = Inflight()
    guard, _ = inflight.incr("k")
    with pytest.raises(RuntimeError):
        with guard:
            assert inflight.get("k") == 1
            raise RuntimeError("boom")
    assert inflight.get("k") == 0


def test_try_incr_takes_nothing_over_the_limit():
    inflight = Inflight()
    held = [inflight.try_incr("global", 2) for _ in range(4)]
    assert [g is not None for g in held] == [True, True, False, False]
    assert inflight.get("global") == 2
    for g in held[:2]:
        g.release()
    assert inflight.get("global") == 0


def test_async_with_releases_on_cancellation():
    inflight = Inflight()
    entered = asyncio.Event()

    async def request():
        guard, _ = inflight.incr("slow")
        async with guard:
            entered.set()
            await asyncio.sleep(10)

    async def main():
        task = asyncio.create_task(request())
        await entered.wait()
        assert inflight.get("slow") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return inflight.get("slow")

    assert asyncio.run(main()) == 0


def test_concurrent_tasks_never_exceed_the_limit():
    inflight = Inflight()
    limit = 3
    peak = 0
    rejected = 0

    async def request(i):
        nonlocal peak, rejected
        guard = inflight.try_incr("api", limit)
        if guard is None:
            rejected += 1
            return
        async with guard:
            peak = max(peak, inflight.get("api"))
            await asyncio.sleep(0.01 * (i % 3))

    async def main():
        await asyncio.gather(*(request(i) for i in range(30)))

    asyncio.run(main())
    assert peak == limit
    assert rejected > 0
    assert inflight.get("api") == 0


def test_guard_is_not_released_by_garbage_collection():
    import gc

    inflight = Inflight()
    inflight.incr("k")  # guard dropped on the floor
    gc.collect()
    assert inflight.get("k") == 1
    assert isinstance(inflight.incr("k")[0], Guard)
