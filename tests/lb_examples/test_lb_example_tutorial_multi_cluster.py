"""Multi-cluster tutorial: /one/ goes to cluster one (blue), the rest to cluster two
(green); each cluster's TCP check runs every second and drops dead members."""

import time

from lbex_support import BLUE, GREEN, Traffic, curl_bodies, running

BASE = "http://127.0.0.1:6188"
DEAD_ONE = r"Backend\(addr='127\.0\.0\.1:343', weight=1\) becomes unhealthy"
DEAD_TWO = r"Backend\(addr='127\.0\.0\.2:343', weight=1\) becomes unhealthy"


def test_paths_pick_the_cluster_and_dead_members_get_no_traffic(lab):
    with running("examples/tutorial_multi_cluster.py", 6188) as ex:
        ex.wait_log(DEAD_ONE)
        ex.wait_log(DEAD_TWO)
        one = curl_bodies([f"{BASE}/one/", f"{BASE}/one/a", f"{BASE}/one/b?x=1"] * 4)
        assert [(r.status, r.body) for r in one] == [(200, BLUE)] * 12
        two = curl_bodies([f"{BASE}/two/", f"{BASE}/", f"{BASE}/one", f"{BASE}/onex/"] * 4)
        assert [(r.status, r.body) for r in two] == [(200, GREEN)] * 16
        ex.wait_log(r"upstream peer is: Backend\(addr='127\.0\.0\.1:18080', weight=1\) \(cluster one\)")
        ex.wait_log(r"upstream peer is: Backend\(addr='127\.0\.0\.1:18081', weight=1\) \(cluster two\)")
        assert "upstream peer is: Backend(addr='127.0.0.1:343'" not in ex.log()


def test_cluster_one_checks_every_second(lab_chaos):
    with running("examples/tutorial_multi_cluster.py", 6188) as ex:
        ex.wait_log(DEAD_ONE)
        with Traffic(f"{BASE}/one/", 0.1) as traffic:
            mark = ex.log_size()
            lab_chaos.stop("blue")
            stopped = time.monotonic()
            ex.wait_log(r"Backend\(addr='127\.0\.0\.1:18080', weight=1\) becomes unhealthy", 2.5, mark)
            assert time.monotonic() - stopped <= 2.5
            # Cluster one is empty now: its requests fail, cluster two is untouched.
            failing = traffic.wait_for(lambda r: r.status >= 500, timeout=2, since=stopped, min_count=3)
            assert all(r.status == 200 and r.body == GREEN for r in curl_bodies([f"{BASE}/two/"] * 3))

            mark = ex.log_size()
            lab_chaos.start("blue")
            started = time.monotonic()
            ex.wait_log(r"Backend\(addr='127\.0\.0\.1:18080', weight=1\) becomes healthy", 2.5, mark)
            back = traffic.wait_for(lambda r: r.status == 200 and r.body == BLUE, timeout=2.5,
                                    since=started, min_count=3)
            assert back > failing
