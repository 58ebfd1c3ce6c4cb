"""Lesson 35: a POST to the admin API on 9090 moves traffic on 6179 within 500 ms;
a bad address is refused with 400 and changes nothing."""

import time

from lbex_support import BLUE, GREEN, Traffic, curl_bodies, curl_head, running

URL = "http://127.0.0.1:6179/"
ADMIN = "http://127.0.0.1:9090/"


def _ok(body):
    return lambda r: r.status == 200 and r.body == body


def test_post_swaps_the_upstream_within_500_ms(lab):
    with running("examples/35_dynamic_reconfiguration.py", 6179, 9090) as ex:
        ex.wait_log(r"Admin API running on 127\.0\.0\.1:9090")
        assert [(r.status, r.body) for r in curl_bodies([URL] * 5)] == [(200, BLUE)] * 5

        with Traffic(URL, 0.1) as traffic:
            traffic.wait_for(_ok(BLUE), timeout=3, min_count=3)
            sent = time.monotonic()
            status, _, body = curl_head(ADMIN, "-d", "127.0.0.1:18081")
            answered = time.monotonic()
            assert (status, body) == (200, "OK")
            ex.wait_log(r"Admin: Hot-swapped upstream to 127\.0\.0\.1:18081")
            switched = traffic.wait_for(_ok(GREEN), timeout=2, since=sent, min_count=3)
            assert switched - answered <= 0.5
            time.sleep(0.5)
            assert all(_ok(GREEN)(r) for r in traffic.since(switched))
            # Every request was answered through the swap.
            assert all(r.status == 200 for r in traffic.replies)

        status, _, body = curl_head(ADMIN)
        assert (status, body) == (200, "127.0.0.1:18081\n")

        # And back to blue.
        status, _, _ = curl_head(ADMIN, "-d", "127.0.0.1:18080")
        assert status == 200
        assert [r.body for r in curl_bodies([URL] * 3)] == [BLUE] * 3


def test_bad_address_is_refused_with_400(lab):
    with running("examples/35_dynamic_reconfiguration.py", 6179, 9090) as ex:
        for bad in ["not-an-address", "127.0.0.1", "127.0.0.1:99999", "300.1.2.3:80"]:
            status, _, body = curl_head(ADMIN, "-d", bad)
            assert status == 400, bad
            assert body.startswith("Invalid address:") and bad in body
        ex.wait_log(r"Admin: Failed to parse address: 'not-an-address'")
        status, _, body = curl_head(ADMIN)
        assert (status, body) == (200, "127.0.0.1:18080\n")
        assert [r.body for r in curl_bodies([URL] * 3)] == [BLUE] * 3

        status, headers, _ = curl_head(ADMIN, "-X", "DELETE")
        assert status == 405 and headers["allow"] == ["GET, POST"]

        status, _, body = curl_head(ADMIN, "--data-binary", "1" * 5000)
        assert (status, body) == (413, "Body too large\n")
        assert [r.body for r in curl_bodies([URL] * 2)] == [BLUE] * 2
