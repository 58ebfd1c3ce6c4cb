"""Lesson 30: with traffic every 100 ms, stopping blue moves all traffic to green
within two health intervals (at most one failed request); starting it brings it back."""

import time

from lbex_support import BLUE, GREEN, Traffic, running

URL = "http://127.0.0.1:6174/"
INTERVAL = 1.0  # the example's health_check_frequency


def _ok(body):
    return lambda r: r.status == 200 and r.body == body


def test_stopped_blue_leaves_and_rejoins_the_rotation(lab_chaos):
    with running("examples/30_health_check_tcp.py", 6174) as ex, Traffic(URL, 0.1) as traffic:
        t0 = time.monotonic()
        traffic.wait_for(_ok(BLUE), timeout=5, since=t0)
        traffic.wait_for(_ok(GREEN), timeout=5, since=t0)

        mark = ex.log_size()
        lab_chaos.stop("blue")
        stopped = time.monotonic()
        ex.wait_log(r"Backend\(addr='127\.0\.0\.1:18080', weight=1\) becomes unhealthy", 2 * INTERVAL + 1, mark)
        time.sleep(2 * INTERVAL + 1)
        settled = stopped + 2 * INTERVAL
        after = traffic.since(settled)
        assert len(after) >= 5
        assert all(r.status == 200 and r.body == GREEN for r in after), after
        failures = [r for r in traffic.since(t0) if r.status != 200]
        assert len(failures) <= 1, failures

        mark = ex.log_size()
        lab_chaos.start("blue")
        restarted = time.monotonic()
        ex.wait_log(r"Backend\(addr='127\.0\.0\.1:18080', weight=1\) becomes healthy", 2 * INTERVAL + 1, mark)
        back = traffic.wait_for(_ok(BLUE), timeout=2 * INTERVAL + 1, since=restarted)
        assert back - restarted <= 2 * INTERVAL + 0.5
        time.sleep(1.0)
        later = traffic.since(back)
        assert {r.body for r in later} == {BLUE, GREEN}
        assert all(r.status == 200 for r in later)
        assert len([r for r in traffic.since(t0) if r.status != 200]) <= 1
