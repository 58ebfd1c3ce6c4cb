"""The access log: one line per request, JSON or combined, reopened on SIGUSR1."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading

import pytest

from metrics_support import h2load, observed, wait_for

from propylon.metrics import AccessLogConfig


def addr(lab, name: str) -> str:
    host, port = lab.address(name)
    return f"{host}:{port}"


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_one_json_line_per_request(lab, tmp_path):
    log = tmp_path / "access.log"
    blue, green = addr(lab, "blue"), addr(lab, "green")
    with observed([blue, green], "--access-log", str(log)) as p:
        h2load(p.url + "/echo?x=1", 1000, clients=4)
        wait_for(lambda: len(lines(log)) >= 1000, 10, "1000 lines")
        entries = [json.loads(line) for line in lines(log)]
    assert len(entries) == 1000
    assert {e["status"] for e in entries} == {200}
    assert {e["method"] for e in entries} == {"GET"}
    assert {e["path"] for e in entries} == {"/echo"}
    ups = [e["upstream_addr"] for e in entries]
    assert ups.count(blue) == 500 and ups.count(green) == 500
    assert len({e["request_id"] for e in entries}) == 1000
    for e in entries:
        assert e["client_addr"] == "127.0.0.1"
        assert e["retries"] == 0 and e["error"] is None
        assert e["bytes_sent"] > 0
        assert 0 < e["upstream_duration"] <= e["duration"]
        assert e["user_agent"].startswith("h2load")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"])


def test_chosen_fields_and_a_failed_request(lab, tmp_path):
    log = tmp_path / "access.log"
    # Enough failed probes needed that the dead backend stays in rotation for the test.
    with observed(["127.0.0.1:1"], "--failures", "1000", "--access-log", str(log),
                  "--fields", "status,upstream_addr,retries,error") as p:
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", p.url + "/"],
                             capture_output=True, text=True, timeout=10)
        assert out.stdout == "502"
        wait_for(lambda: len(lines(log)) == 1, 5, "one line")
    entry = json.loads(lines(log)[0])
    assert set(entry) == {"status", "upstream_addr", "retries", "error"}
    assert entry["status"] == 502 and entry["upstream_addr"] == "127.0.0.1:1"
    assert entry["retries"] == 1  # run_observed retries a failed connect once
    assert "ConnectRefused" in entry["error"]


def test_combined_format(lab, tmp_path):
    log = tmp_path / "access.log"
    with observed([addr(lab, "blue")], "--access-log", str(log), "--format", "combined") as p:
        subprocess.run(["curl", "-s", "-A", 'agent "x"', "-e", "http://ref/", p.url + "/a/b?c=d"],
                       check=True, capture_output=True, timeout=10)
        wait_for(lambda: len(lines(log)) == 1, 5, "one line")
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                        r'"GET /a/b\?c=d HTTP/1\.1" 200 18 "http://ref/" "agent \\"x\\""', lines(log)[0]), lines(log)


def test_reopen_on_sigusr1_loses_nothing(lab, tmp_path):
    log = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    with observed([addr(lab, "blue")], "--access-log", str(log)) as p:
        # The first half may still be arriving when the file is rotated (as logrotate
        # does it, under traffic); the second half is sent after the signal, so the
        # new file must get lines however fast the first half went.
        load = threading.Thread(target=h2load, args=(p.url + "/", 500, 2))
        load.start()
        try:
            wait_for(lambda: len(lines(log)) > 0, 10, "the first lines")
            os.rename(log, rotated)
            os.kill(p.popen.pid, signal.SIGUSR1)
        finally:
            load.join(60)
        h2load(p.url + "/", 500, 2)
        wait_for(lambda: len(lines(rotated)) + len(lines(log)) >= 1000, 10, "1000 lines in the two files")
        old, new = lines(rotated), lines(log)
    assert len(old) + len(new) == 1000
    assert old and new, (len(old), len(new))
    ids = {json.loads(line)["request_id"] for line in old + new}
    assert len(ids) == 1000


@pytest.mark.parametrize("bad, field", [
    ({"format": "xml"}, "format"),
    ({"fields": ("status", "cookie")}, "fields"),
    ({"flush_interval": 0}, "flush_interval"),
    ({"colour": "red"}, "colour"),
])
def test_config_errors_name_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        AccessLogConfig.from_mapping({"path": "/tmp/x.log", **bad})


def test_two_workers_share_the_file_and_reopen_through_the_master(lab, tmp_path):
    log = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    conf = tmp_path / "conf.yaml"
    conf.write_text("version: 1\nthreads: 2\nwork_stealing: false\n")
    with observed([addr(lab, "blue")], "--access-log", str(log), "--conf", str(conf)) as p:
        h2load(p.url + "/", 500, clients=8)
        wait_for(lambda: len(lines(log)) == 500, 10, "500 lines")
        os.rename(log, rotated)
        os.kill(p.popen.pid, signal.SIGUSR1)  # the master, as logrotate's postrotate does
        p.wait_log(r"SIGUSR1 received, relayed to the workers")
        h2load(p.url + "/", 500, clients=8)
        wait_for(lambda: len(lines(log)) == 500, 10, "500 lines in the new file")
        assert p.popen.poll() is None
        assert p.log().count(" started (pid ") == 2  # no worker died of the signal
    old, new = lines(rotated), lines(log)
    assert len(old) == 500 and len(new) == 500
    assert len({json.loads(line)["request_id"] for line in old + new}) == 1000
