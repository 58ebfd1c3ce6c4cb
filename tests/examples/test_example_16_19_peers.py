"""Lessons 16-19: static, DNS and Unix-socket peers; per-peer timeouts answered 504."""

import json

from example_support import curl
from support import running


def test_16_static_peer_reaches_blue(city):
    with running("examples/16_static_peer.py", 6160) as ex:
        r = curl("http://127.0.0.1:6160/")
        assert (r.status, r.text) == (200, "Response from BLUE")
        assert r.header("x-lab-member") == "blue"
        ex.wait_log(r"Connecting to static peer: \('127\.0\.0\.1', 18080\)")


def test_17_dns_peer_resolves_localhost(city):
    with running("examples/17_dns_peer.py", 6161) as ex:
        r = curl("http://127.0.0.1:6161/")
        assert (r.status, r.text) == (200, "Response from BLUE")
        ex.wait_log(r"Resolving host: localhost:18080")
        ex.wait_log(r"Resolved localhost -> 127\.0\.0\.1:18080")
        echo = json.loads(curl("http://127.0.0.1:6161/echo").body)
        assert ["Host", "blue.propylon.test"] in echo["headers"]


def test_18_uds_peer_bridges_tcp_to_the_socket(city):
    with running("examples/18_uds_peer.py", 6162) as ex:
        r = curl("http://127.0.0.1:6162/")
        assert (r.status, r.text) == (200, "Response from UDS")
        assert r.header("x-lab-member") == "uds"
        ex.wait_log(r"Forwarding to UDS: /tmp/propylon-lab/upstream\.sock")
        # A body crosses the socket too.
        echo = json.loads(curl("http://127.0.0.1:6162/echo", "-d", "over the socket").body)
        assert echo["body"] == "over the socket"


def test_19_normal_path_within_its_timeouts(city):
    with running("examples/19_peer_options.py", 6163) as ex:
        r = curl("http://127.0.0.1:6163/normal")
        assert (r.status, r.text) == (200, "Response from BLUE")
        ex.wait_log("Routing to Blue \\(Standard Timeout\\)")


def test_19_connect_timeout_is_504_after_about_100ms(city):
    with running("examples/19_peer_options.py", 6163) as ex:
        r = curl("http://127.0.0.1:6163/timeout")
        assert r.status == 504
        # 100 ms connect budget; curl's own start-up adds a little.
        assert 0.09 <= r.seconds < 1.0, r.seconds
        ex.wait_log(r"Routing to Blackhole \(127\.0\.0\.1:18099\) to force timeout")
        ex.wait_log("Custom Error Handler: Connection Timed Out!")


def test_19_read_timeout_is_504_before_the_slow_answer(city):
    with running("examples/19_peer_options.py", 6163) as ex:
        r = curl("http://127.0.0.1:6163/slow?ms=1500")
        assert r.status == 504
        assert 0.25 <= r.seconds < 1.2, r.seconds
        ex.wait_log("Custom Error Handler: Upstream Read Timed Out!")
        # Under the read budget, the same path succeeds.
        ok = curl("http://127.0.0.1:6163/slow?ms=50")
        assert (ok.status, ok.text) == (200, "Response from BLUE")
