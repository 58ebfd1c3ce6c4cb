"""Lesson 33: primary healthy → all blue; primary down → backup green; primary back → blue."""

import time

from lbex_support import BLUE, GREEN, Traffic, curl_bodies, running

URL = "http://127.0.0.1:6177/"


def _ok(body):
    return lambda r: r.status == 200 and r.body == body


def test_fails_over_to_the_backup_and_back(lab_chaos):
    with running("examples/33_active_passive_lb.py", 6177) as ex:
        # Healthy primary: everything goes to blue, the backup is idle.
        replies = curl_bodies([URL] * 20)
        assert [(r.status, r.body) for r in replies] == [(200, BLUE)] * 20
        assert "FAILOVER" not in ex.log()

        with Traffic(URL, 0.1) as traffic:
            mark = ex.log_size()
            lab_chaos.stop("blue")
            stopped = time.monotonic()
            ex.wait_log(r"Backend\(addr='127\.0\.0\.1:18080', weight=1\) becomes unhealthy", 3.0, mark)
            ex.wait_log(r"FAILOVER ALERT: Primary pool is empty! Switching to Backup \(Green\)\.", 2.0, mark)
            failed_over = traffic.wait_for(_ok(GREEN), timeout=3.0, since=stopped, min_count=5)
            assert failed_over - stopped <= 2.5
            time.sleep(1.0)
            assert all(r.status == 200 and r.body == GREEN for r in traffic.since(failed_over))

            mark = ex.log_size()
            lab_chaos.start("blue")
            restarted = time.monotonic()
            ex.wait_log(r"Backend\(addr='127\.0\.0\.1:18080', weight=1\) becomes healthy", 3.0, mark)
            recovered = traffic.wait_for(_ok(BLUE), timeout=3.0, since=restarted, min_count=5)
            assert recovered - restarted <= 2.5
            time.sleep(1.0)
            assert all(r.status == 200 and r.body == BLUE for r in traffic.since(recovered))
        ex.wait_log(r"Primary \(Blue\) is healthy\. Routing to 127\.0\.0\.1:18080")
