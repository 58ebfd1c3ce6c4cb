"""Lessons 45-47: the cache lock, purge, stale-while-revalidate."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from cachex_support import curl, unique
from support import running


def test_45_five_parallel_requests_one_upstream_fetch(advanced):
    target = unique("/resource")
    url = "http://127.0.0.1:6194" + target
    with running("examples/45_cache_lock.py", 6194) as ex:
        with ThreadPoolExecutor(5) as pool:
            replies = list(pool.map(lambda _: curl(url), range(5)))
        assert all(r.status == 200 and r.body.endswith("#1") for r in replies)  # one upstream fetch
        found = ex.wait_count(r"Client Finished\. Status: (.*?)\. Waited for lock: ([\d.]+)s", 5)
        writers = [float(w) for s, w in found if s == "MISS (WRITER)"]
        readers = [float(w) for s, w in found if s == "HIT (READER)"]
        assert writers == [0.0], found
        assert len(readers) == 4, found
        assert all(1.5 <= w <= 3.0 for w in readers), found


def test_46_age_then_purge(advanced):
    target = unique("/file")
    url = "http://127.0.0.1:6196" + target
    with running("examples/46_cache_purge.py", 6196) as ex:
        first = curl(url)
        assert first.body.endswith("#1") and first.header("cache-control") == "public, max-age=300"
        ex.wait_log(r"\(3\) Cache Miss: Connecting to Upstream")
        time.sleep(1.1)
        second = curl(url)
        assert second.body.endswith("#1") and int(second.header("age")) >= 1
        assert ex.count(r"\(3\) Cache Miss") == 1
        purge = curl(url, "-X", "PURGE")
        assert purge.status == 200
        ex.wait_log(r"\(2\) Decision: Method is PURGE\. Hijacking request to delete item\.")
        third = curl(url)
        assert third.body.endswith("#2")
        assert ex.count(r"\(3\) Cache Miss") == 2
        assert curl(unique("http://127.0.0.1:6196/file"), "-X", "PURGE").status == 404


def test_47_stale_while_revalidate_timeline(advanced):
    target = unique("/swr")
    url = "http://127.0.0.1:6198" + target
    with running("examples/47_stale_while_revalidate.py", 6198) as ex:
        first = curl(url)
        assert first.body == "Content Version 1" and first.seconds >= 1.8
        ex.wait_log(r"Status: MISS \(Fetching\) - Slow Response")
        second = curl(url)
        assert second.body == "Content Version 1" and second.seconds < 1.0
        ex.wait_log(r"Status: HIT \(Fresh\) - Instant Response")
        time.sleep(7)
        third = curl(url)
        assert third.body == "Content Version 1" and third.seconds < 1.0  # stale, at once
        ex.wait_log(r"Status: SWR ACTIVATED \(Serving Stale while Updating\)")
        time.sleep(3)
        fourth = curl(url)
        assert fourth.body == "Content Version 2" and fourth.seconds < 1.0
        # The logging hook runs after the answer is sent: wait for its line.
        assert len(ex.wait_count(r"Status: HIT \(Fresh\) - Instant Response", 2)) == 2
