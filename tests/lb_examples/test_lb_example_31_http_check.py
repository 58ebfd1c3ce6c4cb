"""Lesson 31: a frozen blue (accepts, never answers) is caught by the HTTP check's
read timeout and leaves the rotation; resumed, it comes back."""

import re
import time

from lbex_support import BLUE, GREEN, Traffic, running

URL = "http://127.0.0.1:6175/"
BLUE_BACKEND = r"Backend\(addr='127\.0\.0\.1:18080', weight=1\)"


def _ok(body):
    return lambda r: r.status == 200 and r.body == body


def test_frozen_blue_fails_by_read_timeout_and_returns_when_resumed(lab_chaos):
    with running("examples/31_health_check_http.py", 6175) as ex, Traffic(URL, 0.1) as traffic:
        t0 = time.monotonic()
        traffic.wait_for(_ok(BLUE), timeout=5, since=t0)
        traffic.wait_for(_ok(GREEN), timeout=5, since=t0)

        mark = ex.log_size()
        lab_chaos.freeze("blue")
        # Next probe within 1 s, then 1 s of read timeout.
        m = ex.wait_log(BLUE_BACKEND + r" becomes unhealthy, (.*)", 4.0, mark)
        assert "ReadTimedout" in m.group(1)
        caught = time.monotonic()
        time.sleep(1.5)
        # Requests sent after the check caught it (one may have been in flight to blue).
        after = traffic.since(caught + 1.0)
        assert len(after) >= 3
        assert all(r.status == 200 and r.body == GREEN for r in after), after

        mark = ex.log_size()
        lab_chaos.resume("blue")
        resumed = time.monotonic()
        ex.wait_log(BLUE_BACKEND + r" becomes healthy", 4.0, mark)
        traffic.wait_for(_ok(BLUE), timeout=4.0, since=resumed)
        assert not re.search(BLUE_BACKEND + r" becomes unhealthy", ex.log()[mark:])


def test_a_tcp_check_does_not_notice_a_frozen_backend(lab_chaos):
    # The contrast the lesson draws: lesson 30's TCP check still connects to a frozen
    # blue (the kernel completes the handshake), so blue stays "healthy".
    with running("examples/30_health_check_tcp.py", 6174) as ex:
        mark = ex.log_size()
        lab_chaos.freeze("blue")
        time.sleep(3.0)  # three probe rounds
        assert not re.search(BLUE_BACKEND + r" becomes unhealthy", ex.log()[mark:])
