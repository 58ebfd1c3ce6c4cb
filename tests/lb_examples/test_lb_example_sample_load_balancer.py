"""The load_balancer sample: round robin over the healthy upstreams, TCP checks every 5 s."""

import json
import time

from lbex_support import BLUE, GREEN, Traffic, curl_bodies, running

URL = "http://127.0.0.1:6188/"
SCRIPT = "examples/samples/load_balancer.py"
CHECK = 5.0  # the sample's health_check_frequency


def test_balances_over_healthy_upstreams_only(lab):
    with running(SCRIPT, 6188) as ex:
        ex.wait_log(r"Backend\(addr='127\.0\.0\.1:343', weight=1\) becomes unhealthy")
        replies = curl_bodies([URL] * 10)
        assert all(r.status == 200 for r in replies)
        bodies = [r.body for r in replies]
        assert bodies.count(BLUE) == 5 and bodies.count(GREEN) == 5
        assert all(a != b for a, b in zip(bodies, bodies[1:]))  # strictly alternating
        (echo,) = curl_bodies(["http://127.0.0.1:6188/echo"])
        hosts = [v for k, v in json.loads(echo.body)["headers"] if k.lower() == "host"]
        assert hosts == ["one.one.one.one"]
        assert "upstream peer is: Backend(addr='127.0.0.1:343'" not in ex.log()


def test_a_stopped_upstream_is_dropped_at_the_next_round(lab_chaos):
    with running(SCRIPT, 6188) as ex:
        ex.wait_log(r"127\.0\.0\.1:343', weight=1\) becomes unhealthy")
        with Traffic(URL, 0.1) as traffic:
            mark = ex.log_size()
            lab_chaos.stop("blue")
            # The next round is at most 5 s away; allow a second one in case a round
            # ran while blue was still closing its socket.
            ex.wait_log(r"Backend\(addr='127\.0\.0\.1:18080', weight=1\) becomes unhealthy", 2 * CHECK + 0.5, mark)
            caught = time.monotonic()
            time.sleep(0.8)
            after = traffic.since(caught)
            assert after and all(r.status == 200 and r.body == GREEN for r in after), after
