"""Lesson 34: rewriting the upstreams file moves traffic within one update interval;
a missing or invalid file keeps the last good set."""

import os
import time

from lbex_support import BLUE, GREEN, Traffic, curl_bodies, running

URL = "http://127.0.0.1:6178/"
UPDATE = 1.0  # the example's update_frequency


def _write(path, text):
    # Write-then-rename, as an editor or a config tool would: readers never see half a file.
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _ok(body):
    return lambda r: r.status == 200 and r.body == body


def test_rewriting_the_file_moves_traffic(lab, tmp_path):
    path = tmp_path / "upstreams.txt"
    _write(path, "127.0.0.1:18080\n")
    with running("examples/34_service_discovery_file.py", 6178, env={"UPSTREAMS_FILE": str(path)}) as ex:
        ex.wait_log(rf"Watching file: {path}")
        replies = curl_bodies([URL] * 5)
        assert [(r.status, r.body) for r in replies] == [(200, BLUE)] * 5

        with Traffic(URL, 0.1) as traffic:
            _write(path, "# blue is being retired\n127.0.0.1:18081\n")
            written = time.monotonic()
            switched = traffic.wait_for(_ok(GREEN), timeout=UPDATE + 2, since=written, min_count=3)
            # One update interval, plus the traffic's own 100 ms spacing.
            assert switched - written <= UPDATE + 0.4
            time.sleep(0.5)
            assert all(_ok(GREEN)(r) for r in traffic.since(switched))

        # Both, with weights: 3 blue for 1 green.
        _write(path, "127.0.0.1:18080 3\n127.0.0.1:18081 1\n")
        time.sleep(UPDATE + 0.5)
        bodies = [r.body for r in curl_bodies([URL] * 40)]
        assert bodies.count(BLUE) == 30 and bodies.count(GREEN) == 10


def test_bad_or_missing_file_keeps_the_last_good_set(lab, tmp_path):
    path = tmp_path / "upstreams.txt"
    _write(path, "127.0.0.1:18081\n")
    with running("examples/34_service_discovery_file.py", 6178, env={"UPSTREAMS_FILE": str(path)}) as ex:
        assert [r.body for r in curl_bodies([URL] * 3)] == [GREEN] * 3

        mark = ex.log_size()
        _write(path, "127.0.0.1:18080\nthis is not an address\n")
        ex.wait_log(r"invalid backend file .* line 2.*keeping the last good set of 1 backends", UPDATE + 2, mark)
        time.sleep(UPDATE)
        assert [(r.status, r.body) for r in curl_bodies([URL] * 5)] == [(200, GREEN)] * 5

        mark = ex.log_size()
        path.unlink()
        ex.wait_log(r"cannot read backend file .*keeping the last good set", UPDATE + 2, mark)
        assert [(r.status, r.body) for r in curl_bodies([URL] * 5)] == [(200, GREEN)] * 5

        # A good file again is picked up.
        _write(path, "127.0.0.1:18080\n")
        time.sleep(UPDATE + 0.5)
        assert [(r.status, r.body) for r in curl_bodies([URL] * 5)] == [(200, BLUE)] * 5
