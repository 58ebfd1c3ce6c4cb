"""Two gateway instances sharing their configuration through a real redis-server: an
apply on one is live on the other within 1 s; with Redis stopped both keep serving,
and the other catches up when Redis is back."""

from __future__ import annotations

import http.client
import time

from gateway_support import GatewayProcess, fill
from support import free_port

BLUE, GREEN = b"Response from BLUE", b"Response from GREEN"

CONF = """\
# instance {name}
listeners: [{name: web, address: "127.0.0.1:{port}"}]
admin: {address: "127.0.0.1:{admin}"}
config_store: {redis: "{redis}", key: "test:gateway"}
clusters:
  blue: {backends: [{address: "{blue}"}]}
  green: {backends: [{address: "{green}"}]}
routes:
  - {name: main, match: {path: {prefix: /}}, proxy: {cluster: blue}}
"""


def body_of(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


def put(admin: int, text: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    conn.request("PUT", "/api/config", body=text.encode(), headers={"Content-Type": "text/yaml"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def wait_for(port: int, expected: bytes, timeout: float) -> float:
    started = time.monotonic()
    while body_of(port) != expected:
        assert time.monotonic() - started < timeout, f"{expected!r} not served within {timeout}s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_two_instances_converge_through_redis_and_survive_its_outage(lab, tmp_path, redis_server):
    redis = redis_server
    instances = []
    try:
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            port, admin = free_port(), free_port()
            conf = folder / "gateway.yaml"
            conf.write_text(fill(CONF, lab, port, admin=admin, redis=redis.url).replace("{name}", name))
            gw = GatewayProcess(conf, port, folder / "gateway.log")
            instances.append((gw, admin))
            gw.wait_ready()
        (a, a_admin), (b, b_admin) = instances
        time.sleep(0.5)  # both subscribed

        green = a.conf_path.read_text().replace("cluster: blue}", "cluster: green}")
        assert put(a_admin, green) == 200
        assert body_of(a.port) == GREEN
        took = wait_for(b.port, GREEN, 1.0)
        b_text = b.conf_path.read_text()  # routes from a; b's own listener, admin and comment
        assert "cluster: green}" in b_text and b_text.startswith("# instance b")
        assert f"127.0.0.1:{b.port}" in b_text and f"127.0.0.1:{a.port}" not in b_text
        print(f"apply on a live on b after {took:.3f}s")

        redis.stop()
        assert put(a_admin, green.replace("cluster: green}", "cluster: blue}")) == 200  # applied on a only
        assert body_of(a.port) == BLUE
        for _ in range(20):
            assert body_of(b.port) == GREEN  # b keeps serving its last configuration
        a.wait_log("config store", 5)

        redis.start()  # same port, empty: a publishes what it applied meanwhile, b catches up
        wait_for(b.port, BLUE, 5.0)
        assert body_of(a.port) == BLUE
        assert "reachable again" in a.log() and "Traceback" not in a.log() + b.log()
    finally:
        for gw, _ in instances:
            gw.stop()
