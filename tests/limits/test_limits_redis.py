"""Redis-backed limiters against a real redis-server on a free loopback port."""

import asyncio
import logging
import shutil
import socket
import subprocess
import sys
import time

import pytest
import redis.asyncio as aioredis

from propylon.limits import UNAVAILABLE_COUNT, RedisInflight, RedisRate
from support import RedisServer

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server binary not installed")


# Deadlines in these tests are generous (timeout=2) because the machine may be busy;
# the outage tests check the fast path separately.


def _client(server: RedisServer) -> aioredis.Redis:
    # One client (own connection pool) per simulated process.
    return aioredis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)


def test_two_clients_share_one_limit_per_window(redis_server):
    limit = 10

    async def main():
        a = RedisRate(0.3, url=redis_server.url, prefix="t:rate", timeout=2)
        b = RedisRate(0.3, url=redis_server.url, prefix="t:rate", timeout=2)
        answers = []

        async def hammer(limiter):
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                answers.append(await limiter.observe("client-ip"))
                await asyncio.sleep(0.005)

        await asyncio.gather(hammer(a), hammer(b))
        inspect = _client(redis_server)
        keys = await inspect.keys("t:rate:client-ip:*")
        per_window = [int(await inspect.get(k)) for k in keys]
        await inspect.aclose()
        await a.aclose()
        await b.aclose()
        return answers, per_window

    answers, per_window = asyncio.run(main())
    assert len(per_window) >= 3  # the run spanned several windows
    assert sum(per_window) == len(answers)
    admitted = sum(1 for count in answers if count <= limit)
    # Counts inside one window are distinct (atomic increments), so a window admits
    # min(limit, seen) requests: never more than the limit, whichever client asked.
    assert admitted == sum(min(limit, seen) for seen in per_window)
    assert max(per_window) > limit


def test_a_window_that_saw_40_admits_exactly_10(redis_server):
    async def main():
        clients = [_client(redis_server), _client(redis_server)]
        limiters = [RedisRate(3600, client=c, prefix="t:burst", timeout=2) for c in clients]
        counts = await asyncio.gather(*(limiters[i % 2].observe("ip") for i in range(40)))
        for c in clients:
            await c.aclose()
        return counts

    counts = asyncio.run(main())
    assert sorted(counts) == list(range(1, 41))
    assert sum(1 for c in counts if c <= 10) == 10


_WORKER = """
import asyncio, sys
from propylon.limits import RedisRate, RedisInflight

async def main(url):
    rate = RedisRate(3600, url=url, prefix="t:procs", timeout=2)
    counts = [await rate.observe("shared") for _ in range(15)]
    inflight = RedisInflight(url=url, prefix="t:procs", timeout=2)
    guard = await inflight.try_incr("slots", 4)
    print(sum(1 for c in counts if c <= 10), int(guard is not None), flush=True)
    sys.stdin.readline()  # hold the slot until the test has looked
    if guard is not None:
        await guard.release()
    await rate.aclose()
    await inflight.aclose()

asyncio.run(main(sys.argv[1]))
"""


def test_separate_processes_share_the_limits(redis_server):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_server.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        lines = [p.stdout.readline().split() for p in procs]
        admitted = sum(int(line[0]) for line in lines)
        slots = sum(int(line[1]) for line in lines)

        async def held():
            client = _client(redis_server)
            count = await RedisInflight(client=client, prefix="t:procs").get("slots")
            await client.aclose()
            return count

        during = asyncio.run(held())
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
            assert p.wait(10) == 0
        after = asyncio.run(held())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert admitted == 10  # 6 processes x 15 events in one window, limit 10
    assert slots == 4 and during == 4
    assert after == 0


def test_rate_reads_the_previous_grid_window(redis_server):
    async def main():
        limiter = RedisRate(0.4, url=redis_server.url, prefix="t:prev", timeout=2)
        # Start just after a window boundary so the observations share one window.
        comp = await limiter.rate_with("k", lambda c: c)
        await asyncio.sleep((1 - comp.current_interval_fraction) * limiter.interval + 0.02)
        assert [await limiter.observe("k") for _ in range(6)] == [1, 2, 3, 4, 5, 6]
        assert await limiter.rate("k") == 0.0
        comp = await limiter.rate_with("k", lambda c: c)
        assert (comp.prev_samples, comp.curr_samples) == (0, 6)
        await asyncio.sleep((1 - comp.current_interval_fraction) * limiter.interval + 0.02)
        first = await limiter.rate("k")
        sliding = await limiter.sliding_rate("k")
        await asyncio.sleep(limiter.interval * 2)
        gone = await limiter.rate("k")
        await limiter.aclose()
        return first, sliding, gone

    first, sliding, gone = asyncio.run(main())
    assert first == pytest.approx(6 / 0.4)
    assert 0 < sliding <= 6 / 0.4
    assert gone == 0.0


def test_rate_keys_expire(redis_server):
    async def main():
        limiter = RedisRate(0.2, url=redis_server.url, prefix="t:exp", timeout=2)
        await limiter.observe("k")
        client = limiter._backend.client
        keys = await client.keys("t:exp:*")
        ttls = [await client.pttl(k) for k in keys]
        await asyncio.sleep(0.2 * 2 + 1.1)
        left = await client.keys("t:exp:*")
        await limiter.aclose()
        return ttls, left

    ttls, left = asyncio.run(main())
    assert len(ttls) == 1 and 0 < ttls[0] <= 1400
    assert left == []


def test_inflight_shared_between_clients_and_released(redis_server):
    async def main():
        ca, cb = _client(redis_server), _client(redis_server)
        a = RedisInflight(client=ca, prefix="t:inf", timeout=2)
        b = RedisInflight(client=cb, prefix="t:inf", timeout=2)
        g1, c1 = await a.incr("api")
        g2, c2 = await b.incr("api", 2)
        seen = (c1, c2, await a.get("api"), await b.get("api"))
        over = await a.try_incr("api", 3)
        within = await b.try_incr("api", 4)
        after_try = await a.get("api")
        await within.release()
        await g2.release()
        await g2.release()  # idempotent
        mid = await b.get("api")
        await g1.release()
        end = await a.get("api")
        leftover = await ca.keys("t:inf*")
        await ca.aclose()
        await cb.aclose()
        return seen, over, after_try, mid, end, leftover

    seen, over, after_try, mid, end, leftover = asyncio.run(main())
    assert seen == (1, 3, 3, 3)
    assert over is None and after_try == 4
    assert mid == 1 and end == 0
    assert leftover == []  # nothing left behind once the count is back to zero


def test_inflight_guard_incr_and_cancellation(redis_server):
    async def main():
        limiter = RedisInflight(url=redis_server.url, prefix="t:inf2", timeout=2)
        guard, count = await limiter.incr("k", 2)
        bumped = await guard.incr()  # not undone by release
        await guard.release()
        after = await limiter.get("k")

        entered = asyncio.Event()

        async def request():
            g, _ = await limiter.incr("slow")
            async with g:
                entered.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(request())
        await entered.wait()
        during = await limiter.get("slow")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        released = await limiter.get("slow")
        await limiter.aclose()
        return count, bumped, after, during, released

    assert asyncio.run(main()) == (2, 4, 2, 1, 0)


def test_inflight_lease_reclaims_a_crashed_holder(redis_server):
    async def main():
        limiter = RedisInflight(url=redis_server.url, prefix="t:lease", lease=0.3, timeout=2)
        crashed, _ = await limiter.incr("k")  # never released
        kept, _ = await limiter.incr("k")
        await asyncio.sleep(0.15)
        assert await kept.extend() is True
        await asyncio.sleep(0.2)
        count = await limiter.get("k")  # crashed lease ran out, kept was extended
        assert await crashed.extend() is False
        await crashed.release()
        await kept.release()
        final = await limiter.get("k")
        await limiter.aclose()
        return count, final

    assert asyncio.run(main()) == (1, 0)


def _limits_records(caplog, level):
    return [r for r in caplog.records if r.name == "propylon.limits" and r.levelno == level]


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_outage_policy_one_warning_and_fast_calls(redis_server, caplog, policy):
    caplog.set_level(logging.INFO, logger="propylon.limits")
    expected = 0 if policy == "open" else UNAVAILABLE_COUNT

    async def main():
        rate = RedisRate(60, url=redis_server.url, prefix="t:out", on_error=policy, retry_after=0.2, timeout=1)
        inflight = RedisInflight(url=redis_server.url, prefix="t:out", on_error=policy, retry_after=0.2, timeout=1)
        assert await rate.observe("k") == 1
        redis_server.stop()
        slowest = 0.0
        results = []
        for _ in range(60):
            start = time.monotonic()
            results.append(await rate.observe("k"))
            slowest = max(slowest, time.monotonic() - start)
            await asyncio.sleep(0.01)  # spans several retry_after probes
        guard, count = await inflight.incr("k")
        await guard.release()  # a no-op, must not raise
        assert (await inflight.try_incr("k", 5) is None) == (policy == "closed")
        rate_value = await rate.rate("k")
        warnings = len([r for r in _limits_records(caplog, logging.WARNING) if "RedisRate" in r.getMessage()])

        redis_server.start()  # same port, empty data
        await asyncio.sleep(0.25)
        back = await rate.observe("k")
        infos = _limits_records(caplog, logging.INFO)
        await rate.aclose()
        await inflight.aclose()
        return results, slowest, count, rate_value, warnings, back, infos, rate.available

    results, slowest, count, rate_value, warnings, back, infos, available = asyncio.run(main())
    assert results == [expected] * 60
    assert count == expected
    assert rate_value == (0.0 if policy == "open" else float("inf"))
    assert slowest < 1.0
    assert warnings == 1
    assert back == 1 and available
    assert len([r for r in infos if "RedisRate" in r.getMessage()]) == 1


def test_unresponsive_redis_does_not_hang(caplog):
    # A listener that never answers: connections complete in the kernel backlog, but
    # no reply ever comes, so only the limiter's deadline ends each call.
    caplog.set_level(logging.WARNING, logger="propylon.limits")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"

    async def main():
        limiter = RedisRate(1, url=url, on_error="closed", timeout=0.2, retry_after=5)
        timings = []
        for _ in range(20):
            start = time.monotonic()
            assert await limiter.observe("k") == UNAVAILABLE_COUNT
            timings.append(time.monotonic() - start)
        await limiter.aclose()
        return timings

    try:
        timings = asyncio.run(main())
    finally:
        silent.close()
    assert timings[0] < 1.0
    assert sum(timings[1:]) < 0.1  # later calls answer from the policy at once
    assert len(_limits_records(caplog, logging.WARNING)) == 1


def test_bad_policy_is_rejected():
    with pytest.raises(ValueError):
        RedisRate(1, on_error="maybe")
