"""Lesson 27: weights 3:1 split traffic 3:1 between blue and green."""

from collections import Counter

from lbex_support import BLUE, GREEN, curl_bodies, running


def test_weights_three_to_one_give_300_to_100(lab):
    with running("examples/27_weighted_lb.py", 6171) as ex:
        replies = curl_bodies(["http://127.0.0.1:6171/"] * 400)
        assert all(r.status == 200 for r in replies), {r.status for r in replies}
        assert Counter(r.body for r in replies) == {BLUE: 300, GREEN: 100}
        # Within each window of four, blue three times and green once.
        for i in range(0, 400, 4):
            assert sorted(r.body for r in replies[i:i + 4]) == [BLUE, BLUE, BLUE, GREEN]
        ex.wait_log(r"Selected upstream: Backend\(addr='127\.0\.0\.1:18080', weight=3\)")
        ex.wait_log(r"Selected upstream: Backend\(addr='127\.0\.0\.1:18081', weight=1\)")
