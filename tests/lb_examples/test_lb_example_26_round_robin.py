"""Lesson 26: round robin on 6170 alternates blue and green."""

from lbex_support import BLUE, GREEN, curl_bodies, running


def test_requests_alternate_between_blue_and_green(lab):
    with running("examples/26_round_robin.py", 6170) as ex:
        replies = curl_bodies(["http://127.0.0.1:6170/"] * 6)
        assert [r.status for r in replies] == [200] * 6
        bodies = [r.body for r in replies]
        assert bodies[0] in (BLUE, GREEN)
        other = GREEN if bodies[0] == BLUE else BLUE
        assert bodies == [bodies[0], other] * 3
        ex.wait_log(r"Selected upstream: Backend\(addr='127\.0\.0\.1:18080'")
        ex.wait_log(r"Selected upstream: Backend\(addr='127\.0\.0\.1:18081'")
