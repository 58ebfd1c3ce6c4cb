"""Cluster behaviour through a running gateway: passive ejection, file discovery,
least connections, consistent hashing, in-flight limits, h2c and the idle pool bound."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter

from gateway_support import wait_until
from support import free_port

BLUE, GREEN = b"Response from BLUE", b"Response from GREEN"


def test_passive_ejection_after_consecutive_failures_and_readmission(gateway_run):
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  pair:
    backends: [{address: "127.0.0.1:{dead}"}, {address: "{blue}"}]
    outlier: {consecutive_failures: 3, cooldown: 1}
    retries: 0
routes: [{proxy: {cluster: pair}}]
""", dead=free_port())
    first = [gw.request()[0] for _ in range(6)]  # round robin: dead, blue, dead, blue, ...
    assert Counter(first) == {502: 3, 200: 3}
    gw.wait_log("ejected for 1s after 3 consecutive failures")
    assert [gw.request()[0] for _ in range(8)] == [200] * 8
    gw.wait_log("back in rotation", timeout=5)
    assert 502 in [gw.request()[0] for _ in range(4)]


def test_file_discovery_follows_the_file(gateway_run, lab, tmp_path):
    backends = tmp_path / "backends.txt"
    backends.write_text("{}:{}\n".format(*lab.address("blue")))
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  dyn: {discovery: {type: file, path: "{file}", refresh: 0.2}}
routes: [{proxy: {cluster: dyn}}]
""", file=backends)
    deadline = time.monotonic() + 5
    while gw.request()[2] != BLUE:  # empty until the first discovery round
        assert time.monotonic() < deadline
        time.sleep(0.05)
    backends.write_text("{}:{} 1  # moved\n".format(*lab.address("green")))
    deadline = time.monotonic() + 5
    while gw.request()[2] != GREEN:
        assert time.monotonic() < deadline, "the file change was not picked up"
        time.sleep(0.05)


def test_least_conn_avoids_the_busy_backend(gateway_run):
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  pair: {backends: [{address: "{blue}"}, {address: "{green}"}], selection: least_conn}
routes: [{proxy: {cluster: pair}}]
""")
    slow: list = []
    t = threading.Thread(target=lambda: slow.append(gw.request(path="/slow?ms=1500")[2]))
    t.start()
    time.sleep(0.4)  # the slow request holds one backend
    quick = [gw.request()[2] for _ in range(6)]
    t.join(10)
    busy = slow[0]
    assert set(quick) == {BLUE, GREEN} - {busy}


def test_ketama_keeps_a_key_on_one_backend(gateway_run):
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  pair: {backends: [{address: "{blue}"}, {address: "{green}"}], selection: ketama, hash_on: "header:X-User"}
routes: [{proxy: {cluster: pair}}]
""")
    seen = {user: {gw.request(headers={"X-User": user})[2] for _ in range(5)} for user in map(str, range(20))}
    assert all(len(bodies) == 1 for bodies in seen.values())
    assert {b for bodies in seen.values() for b in bodies} == {BLUE, GREEN}


def test_inflight_limit_and_h2c(gateway_run):
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}", h2c: true}]
clusters: {blue: {backends: [{address: "{blue}"}]}}
routes:
  - match: {path: {prefix: /slow}}
    plugins: {inflight: {max: 1}}
    proxy: {cluster: blue}
  - {proxy: {cluster: blue}}
""")
    held: list = []
    t = threading.Thread(target=lambda: held.append(gw.request(path="/slow?ms=1000")[0]))
    t.start()
    time.sleep(0.4)
    assert gw.request(path="/slow?ms=0")[0] == 429
    t.join(10)
    assert held == [200]
    assert gw.request(path="/slow?ms=0")[0] == 200  # released when the first ended
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "-", "-w", "\\n%{http_version}",
                          f"http://127.0.0.1:{gw.port}/"], capture_output=True, text=True, timeout=20)
    assert out.stdout.splitlines() == ["Response from BLUE", "2"]


def test_a_stopped_backend_leaves_rotation_and_returns(gateway_run, lab_chaos):
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  pair:
    backends: [{address: "{blue}"}, {address: "{green}"}]
    health_check: {type: http, interval: 0.5, timeout: 0.5}
    retries: 1
routes: [{proxy: {cluster: pair}}]
""")
    assert {gw.request()[2] for _ in range(4)} == {BLUE, GREEN}
    blue = lab_chaos.address("blue")
    lab_chaos.stop("blue")
    stopped = time.monotonic()
    gw.wait_log("becomes unhealthy", timeout=5)
    assert time.monotonic() - stopped < 2 * 0.5 + 1.0  # two check intervals, and the check's own timeout
    # retries cover the moment before the check noticed; afterwards only green answers
    assert [gw.request()[:3:2] for _ in range(6)] == [(200, GREEN)] * 6
    lab_chaos.start("blue")
    assert lab_chaos.address("blue") == blue
    gw.wait_log("becomes healthy", timeout=5)
    assert {gw.request()[2] for _ in range(4)} == {BLUE, GREEN}


def test_passive_ejection_after_consecutive_502s(gateway_run):
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  one:
    backends: [{address: "{blue}"}]
    outlier: {consecutive_failures: 3, cooldown: 30}
routes: [{rewrite: {regex: {pattern: ".*", replacement: "/status/502"}}, proxy: {cluster: one}}]
""")
    assert [gw.request()[0] for _ in range(5)] == [502, 502, 502, 503, 503]


def test_a_dead_backend_502_keeps_the_client_connection(gateway_run):
    import http.client

    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  gone: {backends: [{address: "127.0.0.1:{dead}"}], retries: 0}
routes: [{proxy: {cluster: gone}}]
""", dead=free_port())
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.status == 502 and r.read() == b"" and not r.will_close
        sock = conn.sock
        conn.request("GET", "/again")
        r = conn.getresponse()
        assert r.status == 502 and r.read() == b""
        assert conn.sock is sock  # the same connection carried both
    finally:
        conn.close()


def established_to(port: int) -> int:
    """Open (ESTABLISHED) TCP connections to ``port`` on this machine, counted from
    the connecting side (the kernel's table: what the gateway holds, idle or not)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def test_pool_size_bounds_the_idle_connections_kept_to_a_cluster(gateway_run, lab):
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  kept: {backends: [{address: "{blue}"}], pool_size: 2}
  free: {backends: [{address: "{green}"}]}
routes:
  - {match: {path: {prefix: /kept/}}, rewrite: {strip_prefix: /kept}, proxy: {cluster: kept}}
  - {match: {path: {prefix: /free/}}, rewrite: {strip_prefix: /free}, proxy: {cluster: free}}
""")
    blue, green = lab.address("blue")[1], lab.address("green")[1]

    def burst(prefix: str) -> list:
        # 8 at once, each long enough that the gateway opens 8 upstream connections.
        answers: list = []
        threads = [threading.Thread(target=lambda: answers.append(gw.request(path=f"{prefix}/slow?ms=400")))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        return answers

    assert [(status, body) for status, _, body in burst("/kept")] == [(200, BLUE)] * 8
    assert [(status, body) for status, _, body in burst("/free")] == [(200, GREEN)] * 8
    # nginx's keepalive semantics: the burst opened what it needed; afterwards the
    # gateway keeps at most 2 idle to the bounded cluster, all 8 to the other.
    assert wait_until(lambda: established_to(blue) == 2, 5, "2 idle connections to blue")
    assert established_to(green) == 8
    # The kept ones serve the next requests: no new connection.
    assert [gw.request(path="/kept/")[2] for _ in range(3)] == [BLUE] * 3
    assert established_to(blue) == 2
