"""Lesson 36 across processes: two proxies share one limit of 10 requests per 1 s
window through a real redis-server on a free loopback port."""

import random
import re
import shutil
import subprocess
import time

import pytest
import redis

from limex_support import BlueGone, retry_if_blue_vanishes
from support import free_port, running, wait_port_free

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")

LIMIT = 10
SCRIPT = "examples/36_redis_rate_limit.py"


@pytest.fixture
def redis_url(redis_server):
    return redis_server.url


def _burst(port: int, source: str, count: int) -> subprocess.Popen:
    """``count`` parallel requests from ``source`` through one curl process."""
    args = ["curl", "-s", "-Z", "--parallel-max", str(count), "--parallel-immediate",
            "--interface", source, "--max-time", "10", "-w", "%{http_code}\n"]
    for _ in range(count):
        args += ["-o", "/dev/null", f"http://127.0.0.1:{port}/"]
    return subprocess.Popen(args, stdout=subprocess.PIPE)


def _statuses(proc: subprocess.Popen) -> list[int]:
    out, _ = proc.communicate(timeout=20)
    statuses = [int(line) for line in out.decode().split()]
    if 502 in statuses:
        raise BlueGone("502 from the proxy: the upstream went away")
    return statuses


def _start_of_next_window(client: redis.Redis, margin: float = 0.03) -> None:
    """Sleep until ``margin`` seconds into the next window of the Redis clock
    (RedisRate's window number is floor(redis_ms / 1000))."""
    sec, usec = client.time()
    into = (sec * 1000 + usec // 1000) % 1000 / 1000
    time.sleep(1.0 - into + margin)


def _windows(client: redis.Redis, ip: str) -> dict[int, int]:
    """The count of every window Redis holds for ``ip``."""
    prefix = f"lesson36:rate:{ip}:"
    return {int(k.decode()[len(prefix):]): int(client.get(k))
            for k in client.scan_iter(match=prefix + "*")}


@retry_if_blue_vanishes
def test_two_processes_admit_ten_per_window_together(lab, redis_url):
    p1, p2 = free_port(), free_port()
    for p in (p1, p2):
        wait_port_free(p)
    env1 = {"REDIS_URL": redis_url, "LISTEN": f"127.0.0.1:{p1}"}
    env2 = {"REDIS_URL": redis_url, "LISTEN": f"127.0.0.1:{p2}"}
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    with running(SCRIPT, p1, env=env1) as a, running(SCRIPT, p2, env=env2) as b:
        # Open each process's Redis connection first, from an address the bursts
        # below do not use, so connecting does not eat into a burst's window.
        for p in (p1, p2):
            assert _statuses(_burst(p, "127.0.0.9", 1)) == [200]

        # A burst that straddles a window boundary proves less; try again from
        # another source address (a new key) until one fits in one window.
        whole_window_seen = False
        # Source addresses of their own: a rerun must not meet an earlier run's keys.
        net = f"127.0.{random.randrange(10, 250)}"
        for source in (f"{net}.1", f"{net}.2", f"{net}.3"):
            _start_of_next_window(client)
            bursts = [_burst(p1, source, 20), _burst(p2, source, 20)]
            s1, s2 = (_statuses(x) for x in bursts)
            assert len(s1) == len(s2) == 20
            assert set(s1 + s2) <= {200, 429}
            admitted = (s1 + s2).count(200)

            windows = _windows(client, source)
            assert sum(windows.values()) == 40
            # Across both processes no window admits more than the limit: each
            # admission logs its place in the shared count, 1..10 per window.
            places = sorted(int(n) for ex in (a, b)
                            for n in re.findall(rf"Admitted {re.escape(source)}: (\d+)/{LIMIT}", ex.log()))
            expected = sorted(n for c in windows.values() for n in range(1, min(c, LIMIT) + 1))
            assert places == expected
            assert admitted == len(places)
            if len(windows) == 1:
                # A window that saw all 40 admits exactly 10 (not 10 per process).
                assert admitted == LIMIT
                whole_window_seen = True
                break
        assert whole_window_seen, "no burst fitted in one window"
    client.close()
