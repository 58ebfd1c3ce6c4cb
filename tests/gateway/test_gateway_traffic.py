"""Traffic plugins through a running gateway on the lab: canary splits, mirrors, circuit breakers."""

from __future__ import annotations

import http.client
import json
import statistics
import time
import urllib.parse
import urllib.request
from collections import Counter

import pytest

from propylon.gateway.config import GatewayConfigError, parse_config
from propylon.gateway.plugins.traffic import BUCKETS, split_bucket
from support import free_port, scrape

BLUE = b"Response from BLUE"
GREEN = b"Response from GREEN"

SPLIT = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  stable: {backends: [{address: "{blue}"}]}
  canary: {backends: [{address: "{green}"}]}
routes:
  - match: {path: {prefix: /random}}
    plugins: {traffic_split: {cluster: canary, percent: 10}}
    proxy: {cluster: stable}
  - match: {path: {prefix: /sticky}}
    plugins: {traffic_split: {cluster: canary, percent: 30, sticky_on: "header:X-User"}}
    proxy: {cluster: stable}
"""


def test_canary_gets_its_share_of_2000_requests(gateway_run):
    gw = gateway_run(SPLIT)
    answers = gw.request_many([("/random", {})] * 2000)
    bodies = Counter(body for status, _, body in answers if status == 200)
    assert sum(bodies.values()) == 2000, bodies
    share = bodies[GREEN] / 2000
    print(f"canary share over 2000 requests: {share:.2%} (green {bodies[GREEN]}, blue {bodies[BLUE]})")
    assert 0.07 <= share <= 0.13, bodies


def test_sticky_split_sends_one_key_always_the_same_way(gateway_run):
    gw = gateway_run(SPLIT)
    users = [f"user-{i}" for i in range(300)]
    first = {u: b for u, (_, _, b) in zip(users, gw.request_many([("/sticky", {"X-User": u}) for u in users]))}
    for _ in range(2):
        again = gw.request_many([("/sticky", {"X-User": u}) for u in users])
        assert {u: b for u, (_, _, b) in zip(users, again)} == first
    canary = sum(1 for b in first.values() if b == GREEN)
    assert set(first.values()) == {BLUE, GREEN}
    assert 0.2 <= canary / len(users) <= 0.4, canary
    # Without the key a request is split at random: both ways are seen.
    assert {b for _, _, b in gw.request_many([("/sticky", {})] * 60)} == {BLUE, GREEN}


CACHED_SPLIT = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
admin: {address: "127.0.0.1:{admin}"}
clusters:
  stable: {backends: [{address: "{blue}"}]}
  canary: {backends: [{address: "{green}"}]}
routes:
  - name: split
    match: {path: {prefix: /}}
    plugins:
      traffic_split: {cluster: canary, percent: 50, sticky_on: "header:X-User"}
      cache: {ttl: 60}
    proxy: {cluster: stable}
"""


def test_each_side_of_a_cached_split_caches_its_own_answers(gateway_run):
    admin = free_port()
    gw = gateway_run(CACHED_SPLIT, admin=admin)
    # One user the split sends to each side (the split hashes the header's value).
    users = [f"user-{i}" for i in range(64)]
    stable = next(u for u in users if split_bucket(u.encode()) >= BUCKETS // 2)
    canary = next(u for u in users if split_bucket(u.encode()) < BUCKETS // 2)

    def get(user: str) -> tuple:
        status, headers, body = gw.request("GET", "/page?v=1", headers={"X-User": user})
        assert status == 200, (status, body)
        return headers.get("x-cache-status"), body

    assert get(stable) == ("MISS", BLUE)
    assert get(canary) == ("MISS", GREEN)  # not stable's entry
    assert get(stable) == ("HIT", BLUE)
    assert get(canary) == ("HIT", GREEN)

    def purge(document: dict) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
        try:
            conn.request("POST", "/api/cache/purge", body=json.dumps(document))
            resp = conn.getresponse()
            assert resp.status == 200
            return json.loads(resp.read())
        finally:
            conn.close()

    # Purging the target removes both sides' entries; so does a purge by prefix.
    assert purge({"host": f"127.0.0.1:{gw.port}", "path": "/page?v=1"})["purged"] == 2
    assert get(canary) == ("MISS", GREEN)
    assert get(stable) == ("MISS", BLUE)
    assert purge({"prefix": "/pa"})["purged"] == 2
    assert get(stable) == ("MISS", BLUE)


BASE = {
    "listeners": [{"name": "web", "address": "127.0.0.1:6188"}],
    "clusters": {"app": {"backends": [{"address": "127.0.0.1:18080"}]}},
}


def problems(route: dict) -> list[str]:
    with pytest.raises(GatewayConfigError) as info:
        parse_config({**BASE, "routes": [route]})
    return [str(p) for p in info.value.problems]


def test_split_config_errors_named_by_path():
    assert problems({"proxy": {"cluster": "app"}, "plugins": {"traffic_split": {"cluster": "ap", "percent": 5}}}) == [
        "routes[0].plugins.traffic_split.cluster: unknown cluster 'ap' (did you mean 'app'?)"]
    assert problems({"respond": {"status": 200}, "plugins": {"traffic_split": {"cluster": "app", "percent": 5}}}) == [
        "routes[0].plugins.traffic_split: only a route that proxies to a cluster can use it"]
    got = problems({"proxy": {"cluster": "app"},
                    "plugins": {"traffic_split": {"cluster": "app", "percent": 101, "sticky_on": "ip"}}})
    assert got[0].startswith("routes[0].plugins.traffic_split.percent:") and len(got) == 2, got


# --- mirror ------------------------------------------------------------------------------

RECORDER = '''
import json
from propylon.gateway import Plugin


class Recorder(Plugin):
    """Writes each request it sees (and its body) as a JSON line to options["path"]."""

    async def request_body_filter(self, session, body, end_of_stream, ctx):
        ctx.vars.setdefault("body", []).append(body or b"")
        if end_of_stream:
            req = session.req_header
            line = {"method": req.method, "uri": req.uri, "test": session.get_header("x-test"),
                    "body": b"".join(ctx.vars["body"]).decode()}
            with open(self.options["path"], "a") as f:
                f.write(json.dumps(line) + "\\n")
'''

# The mirror cluster is the gateway's own "shadow" listener: it records each copy and
# sends it to blue's /slow, so that every copy takes 500 ms (?ms=500) to be answered.
MIRROR = """
listeners:
  - {name: web, address: "127.0.0.1:{port}"}
  - {name: shadow, address: "127.0.0.1:{shadow}"}
clusters:
  blue: {backends: [{address: "{blue}"}]}
  shadow: {backends: [{address: "127.0.0.1:{shadow}"}]}
  dead: {backends: [{address: "127.0.0.1:{dead}"}]}
  hanging: {backends: [{address: "{blackhole}"}], timeouts: {connect: 30}}
routes:
  - name: shadow
    listeners: [shadow]
    rewrite: {regex: {pattern: "^/.*$", replacement: /slow}}
    plugins: {python: [{plugin: "mirror_recorder:Recorder", options: {path: "{record}"}}]}
    proxy: {cluster: blue}
  - name: plain
    listeners: [web]
    match: {path: {prefix: /plain}}
    proxy: {cluster: blue}
  - name: mirrored
    listeners: [web]
    match: {path: {prefix: /m}}
    plugins: {mirror: {cluster: shadow, max_body: 4096}}
    proxy: {cluster: blue}
  - name: to-dead
    listeners: [web]
    match: {path: {prefix: /dead}}
    plugins: {mirror: {cluster: dead}}
    proxy: {cluster: blue}
  - name: to-hanging
    listeners: [web]
    match: {path: {prefix: /hang}}
    plugins: {mirror: {cluster: hanging, max_inflight: 3, timeout: 20}}
    proxy: {cluster: blue}
metrics: {address: "127.0.0.1:{metrics}"}
"""


def timed_gets(gw, path: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    took = []
    try:
        for i in range(n):
            start = time.perf_counter()
            conn.request("GET", f"{path}?ms=500&i={i}")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == BLUE
            took.append(time.perf_counter() - start)
    finally:
        conn.close()
    return took


def records(path, n: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


@pytest.fixture
def mirror_gateway(gateway_run, lab, tmp_path):
    (tmp_path / "mirror_recorder.py").write_text(RECORDER)
    ports = {k: free_port() for k in ("shadow", "dead", "metrics")}
    record = tmp_path / "copies.jsonl"
    gw = gateway_run(MIRROR, record=record, blackhole="%s:%d" % lab.address("blackhole"), **ports)
    return gw, record, ports["metrics"]


def copies(metrics: int, route: str) -> dict:
    got = scrape(metrics)
    return {result: got.get(("propylon_gateway_mirror_copies_total", (("result", result), ("route", route))), 0)
            for result in ("answered", "failed", "dropped", "too_large")}


def test_mirror_gets_a_copy_while_the_client_stays_fast(mirror_gateway):
    gw, record, metrics = mirror_gateway
    plain = timed_gets(gw, "/plain", 40)
    mirrored = timed_gets(gw, "/m", 40)
    p50 = statistics.median
    print(f"client latency, 40 GETs each: plain p50 {p50(plain) * 1000:.1f} ms max {max(plain) * 1000:.1f} ms; "
          f"mirrored (copies answered after 500 ms) p50 {p50(mirrored) * 1000:.1f} ms "
          f"max {max(mirrored) * 1000:.1f} ms")
    assert max(mirrored) < 0.25, mirrored
    assert p50(mirrored) < p50(plain) * 2 + 0.02
    got = records(record, 40)
    assert sorted(r["uri"] for r in got) == sorted(f"/m?ms=500&i={i}" for i in range(40))
    # Bodies are copied as sent upstream, with the headers; one over max_body is not.
    assert gw.request("POST", "/m/post?ms=100", {"X-Test": "small"}, b"x" * 1000)[0] == 200
    assert gw.request("POST", "/m/post?ms=100", {"X-Test": "big"}, b"y" * 5000)[0] == 200
    assert gw.request("POST", "/m/post?ms=100", {"X-Test": "chunked", "Transfer-Encoding": "chunked"},
                      iter([b"ab", b"cd"]))[0] == 200
    got = {r["test"]: r for r in records(record, 42)[40:]}
    assert set(got) == {"small", "chunked"}, got
    assert (got["small"]["method"], got["small"]["body"]) == ("POST", "x" * 1000)
    assert got["chunked"]["body"] == "abcd"
    time.sleep(0.6)
    assert copies(metrics, "mirrored") == {"answered": 42, "failed": 0, "dropped": 0, "too_large": 1}


def test_a_dead_or_hanging_mirror_changes_nothing_for_the_client(mirror_gateway):
    gw, _, metrics = mirror_gateway
    plain = timed_gets(gw, "/plain", 20)
    dead = timed_gets(gw, "/dead", 20)
    hanging = timed_gets(gw, "/hang", 20)
    assert max(dead) < 0.25 and max(hanging) < 0.25, (dead, hanging)
    assert statistics.median(hanging) < statistics.median(plain) * 2 + 0.02
    assert copies(metrics, "to-dead") == {"answered": 0, "failed": 20, "dropped": 0, "too_large": 0}
    # Three copies hang in the blackhole's accept queue; the others are dropped at once.
    assert copies(metrics, "to-hanging") == {"answered": 0, "failed": 0, "dropped": 17, "too_large": 0}
    log = gw.log()
    assert log.count("mirror to cluster dead: copy not delivered") == 1, log
    assert "Traceback" not in log


# --- circuit breaker ---------------------------------------------------------------------

BREAKER = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  blue: {backends: [{address: "{blue}"}]}
  dead:
    backends: [{address: "127.0.0.1:{dead}"}]
    retries: 0
    circuit_breaker: {failures: 3, window: 10, cooldown: 1}
routes:
  - name: flaky
    match: {path: {prefix: /status/}}
    plugins: {circuit_breaker: {failures: 3, window: 10, cooldown: 1}}
    proxy: {cluster: blue}
  - name: ratio
    match: {path: {prefix: /ratio}}
    rewrite: {regex: {pattern: "^/ratio", replacement: /status}}
    plugins: {circuit_breaker: {failures: 100, failure_ratio: 0.5, min_requests: 6, cooldown: 30}}
    proxy: {cluster: blue}
  - name: down
    match: {path: {prefix: /down}}
    proxy: {cluster: dead}
"""


def lab_hits(lab, target: str) -> int:
    host, port = lab.address("blue")
    with urllib.request.urlopen(f"http://{host}:{port}/__lab/hits?target={urllib.parse.quote(target)}",
                                timeout=5) as r:
        return json.loads(r.read())["hits"]


def test_route_breaker_opens_answers_503_probes_and_closes(gateway_run, lab):
    gw = gateway_run(BREAKER, dead=free_port())
    target = f"/status/500?t={time.time()}"
    assert [gw.request(path=target)[0] for _ in range(3)] == [500, 500, 500]
    start = time.perf_counter()
    status, _, body = gw.request(path=target)
    assert status == 503 and time.perf_counter() - start < 0.2
    assert gw.request(path="/status/200")[0] == 503  # the whole route, while open
    assert lab_hits(lab, target) == 3  # nothing went upstream
    gw.wait_log("circuit breaker of route flaky is open (3 failures within 10s); answering 503 for 1s")
    gw.wait_log("Fail to proxy: ")
    time.sleep(1.1)
    assert gw.request(path=target)[0] == 500  # the probe goes through, fails: open again
    assert gw.request(path="/status/200")[0] == 503
    gw.wait_log("circuit breaker of route flaky is open (the probe request failed)")
    time.sleep(1.1)
    assert gw.request(path="/status/200")[0] == 200  # a probe that succeeds closes it
    assert [gw.request(path="/status/200")[0] for _ in range(5)] == [200] * 5
    gw.wait_log("circuit breaker of route flaky closed: the probe request succeeded")
    assert "Traceback" not in gw.log()


def test_breaker_on_a_failure_ratio(gateway_run):
    gw = gateway_run(BREAKER, dead=free_port())
    assert [gw.request(path=p)[0] for p in ["/ratio/200", "/ratio/500"] * 3] == [200, 500] * 3
    assert gw.request(path="/ratio/200")[0] == 503
    gw.wait_log("circuit breaker of route ratio is open (3 of 6 requests failed within 10s)")


def test_cluster_breaker_opens_on_refused_connections(gateway_run):
    gw = gateway_run(BREAKER, dead=free_port())
    assert [gw.request(path="/down")[0] for _ in range(3)] == [502, 502, 502]
    assert [gw.request(path="/down")[0] for _ in range(3)] == [503, 503, 503]
    gw.wait_log("circuit breaker of cluster dead is open (3 failures within 10s)")
