"""Lessons 43 and 44: MISS → HIT → EXPIRED, and Cache-Control deciding what is kept."""

from __future__ import annotations

import time

from cachex_support import curl, unique
from support import running


def test_43_miss_hit_expired(advanced):
    target = unique("/")
    with running("examples/43_memory_cache.py", 6190, env={"PROPYLON_CACHE_TTL": "2"}) as ex:
        first = curl("http://127.0.0.1:6190" + target)
        assert first.status == 200 and first.body.endswith("#1")
        ex.wait_log(r"Cache Status: MISS \(Fetched from Upstream\)")
        second = curl("http://127.0.0.1:6190" + target)
        assert second.body == first.body  # the upstream was not contacted: still #1
        ex.wait_log(r"Cache Status: HIT \(Served from Memory\)")
        time.sleep(2.5)
        third = curl("http://127.0.0.1:6190" + target)
        assert third.body.endswith("#2")
        ex.wait_log(r"Cache Status: EXPIRED \(Revalidating\)")


def test_44_cache_control(advanced):
    no_store, short, long_ = unique("/no_store"), unique("/short"), unique("/long")
    url = "http://127.0.0.1:6192"
    with running("examples/44_cache_control.py", 6192) as ex:
        assert curl(url + no_store).body.endswith("#1")
        assert curl(url + no_store).body.endswith("#2")
        ex.wait_count(r"Path /no_store, Status: SKIP \(Uncacheable\)", 2)
        assert curl(url + short).body.endswith("#1")
        assert curl(url + long_).body.endswith("#1")
        assert curl(url + short).body.endswith("#1")
        time.sleep(6)
        assert curl(url + short).body.endswith("#2")
        assert curl(url + long_).body.endswith("#1")
        ex.wait_log(r"Path /short, Status: MISS")
        ex.wait_log(r"Path /short, Status: HIT")
        ex.wait_log(r"Path /short, Status: EXPIRED")
        ex.wait_log(r"Path /long, Status: HIT")
        assert ex.count(r"Path /long, Status: (MISS|EXPIRED)") == 1
