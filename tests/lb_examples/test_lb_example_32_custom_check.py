"""Lesson 32: the body-matching check keeps green (200 but no "BLUE") out of rotation."""

import re
import time

from lbex_support import BLUE, curl_bodies, running

URL = "http://127.0.0.1:6176/"


def test_green_fails_the_body_check_and_gets_no_traffic(lab):
    with running("examples/32_custom_health_check.py", 6176) as ex:
        ex.wait_log(r"Custom Check Failed for 127\.0\.0\.1:18081: Body did not contain 'BLUE'")
        ex.wait_log(r"Backend\(addr='127\.0\.0\.1:18081', weight=1\) becomes unhealthy, "
                    r"InvalidBody context: Body validation failed")
        replies = curl_bodies([URL] * 20)
        assert [(r.status, r.body) for r in replies] == [(200, BLUE)] * 20
        # Later rounds keep green out and never fault blue.
        time.sleep(2.2)
        replies = curl_bodies([URL] * 10)
        assert [(r.status, r.body) for r in replies] == [(200, BLUE)] * 10
        log = ex.log()
        assert len(re.findall(r"Custom Check Failed for 127\.0\.0\.1:18081", log)) >= 3
        assert "Custom Check Failed for 127.0.0.1:18080" not in log
        assert "18081', weight=1) becomes healthy" not in log


def test_no_backend_passing_means_an_error_not_a_wrong_backend(lab_chaos):
    # With blue stopped, the only backend left fails the body check: nothing is routable.
    lab_chaos.stop("blue")
    with running("examples/32_custom_health_check.py", 6176) as ex:
        ex.wait_log(r"18081', weight=1\) becomes unhealthy, InvalidBody")
        ex.wait_log(r"18080', weight=1\) becomes unhealthy, ConnectRefused")
        replies = curl_bodies([URL] * 3)
        assert all(r.status >= 500 for r in replies), replies
        assert "GREEN" not in "".join(r.body for r in replies)


def test_a_frozen_blue_fails_the_check_by_read_timeout(lab_chaos):
    with running("examples/32_custom_health_check.py", 6176) as ex:
        ex.wait_log(r"18081', weight=1\) becomes unhealthy, InvalidBody")
        mark = ex.log_size()
        lab_chaos.freeze("blue")
        ex.wait_log(r"18080', weight=1\) becomes unhealthy, ReadTimedout context: Read timed out", 4.0, mark)
        lab_chaos.resume("blue")
        ex.wait_log(r"18080', weight=1\) becomes healthy", 4.0, mark)
        replies = curl_bodies([URL] * 4)
        assert [(r.status, r.body) for r in replies] == [(200, BLUE)] * 4
