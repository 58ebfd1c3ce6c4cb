"""The pytest fixtures the rest of the suite uses: ``lab`` and ``lab_chaos``.

By default ``lab`` binds the endpoint map's fixed ports; run with
``--lab-ports=ephemeral`` when another lab already holds them.
"""

from __future__ import annotations

from propylon.lab import Lab

from lab_support import curl

FIXED = {
    "blue": [("127.0.0.1", 18080)], "green": [("127.0.0.1", 18081)],
    "advanced-http": [("127.0.0.1", 18090)], "advanced-https": [("127.0.0.1", 18443)],
    "advanced-mtls": [("127.0.0.1", 18444)], "advanced-h2c": [("127.0.0.1", 18082)],
    "grpc": [("127.0.0.1", 19000), ("127.0.0.1", 19001)], "forward-proxy": [("127.0.0.1", 13128)],
    "websocket": [("127.0.0.1", 19091)], "blackhole": [("127.0.0.1", 18099)],
}


def test_lab_fixture_runs_every_member(lab: Lab) -> None:
    assert set(lab.names) == set(FIXED) | {"uds"}
    assert curl(lab.url("blue")).stdout == "Response from BLUE"
    assert curl(lab.url("green")).stdout == "Response from GREEN"
    assert curl("--unix-socket", str(lab.address("uds")), "http://x/").stdout == "Response from UDS"
    if lab.port_mode == "fixed":
        for name, addrs in FIXED.items():
            assert [e.address for e in lab.members[name].endpoints] == addrs
        assert lab.address("uds") == "/tmp/propylon-lab/upstream.sock"


def test_lab_chaos_lets_a_test_stop_and_freeze(lab_chaos: Lab) -> None:
    lab_chaos.freeze("blue")
    lab_chaos.stop("green")
    assert curl("--max-time", "0.5", lab_chaos.url("blue")).returncode == 28
    assert curl(lab_chaos.url("green")).returncode == 7


def test_members_are_back_after_a_chaos_test(lab: Lab) -> None:
    assert not lab.is_frozen("blue") and lab.is_running("green")
    assert curl("--max-time", "5", lab.url("blue")).stdout == "Response from BLUE"
    assert curl("--max-time", "5", lab.url("green")).stdout == "Response from GREEN"
