"""Reload on SIGHUP: the swap under load, refusal of a broken file, health kept across it."""

from __future__ import annotations

import http.client
import socket
import threading
import time

BLUE, GREEN = b"Response from BLUE", b"Response from GREEN"

BASE = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  blue: {backends: [{address: "{blue}"}]}
  green: {backends: [{address: "{green}"}]}
routes:
  - {match: {path: {prefix: /x}}, proxy: {cluster: %s}}
  - {match: {path: {exact: /slow}}, rewrite: {regex: {pattern: ".*", replacement: "/slow"}}, proxy: {cluster: blue}}
"""


class Client(threading.Thread):
    """A bounded loop of requests on one keep-alive connection, recording each answer."""

    def __init__(self, port: int, path: str, count: int) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.count = port, path, count
        self.answers: list = []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        for _ in range(self.count):
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                self.answers.append((resp.status, resp.read()))
            except (OSError, http.client.HTTPException) as e:
                self.answers.append((0, repr(e).encode()))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()


def test_sighup_swaps_a_route_with_requests_in_flight(gateway_run):
    gw = gateway_run(BASE % "blue")
    clients = [Client(gw.port, "/x", 400) for _ in range(4)]
    slow = Client(gw.port, "/slow?ms=300", 6)  # requests that span the swap
    for c in clients + [slow]:
        c.start()
    while sum(len(c.answers) for c in clients) < 200:
        time.sleep(0.01)
    gw.reload(gw.conf_path.read_text().replace("cluster: blue}}\n  - {match: {path: {exact: /slow",
                                               "cluster: green}}\n  - {match: {path: {exact: /slow"),
              wait_for="configuration version 2 applied")
    for c in clients + [slow]:
        c.join(60)
    answers = [a for c in clients for a in c.answers]
    assert len(answers) == 1600 and {s for s, _ in answers} == {200}, {s for s, _ in answers}
    assert {s for s, _ in slow.answers} == {200}
    for c in clients:  # each client saw blue, then green from some point on, never back
        bodies = [b for _, b in c.answers]
        first_green = bodies.index(GREEN)
        assert set(bodies[:first_green]) == {BLUE} and set(bodies[first_green:]) == {GREEN}
    assert gw.request(path="/x")[2] == GREEN


def test_invalid_reload_is_refused_and_the_old_config_serves(gateway_run):
    gw = gateway_run(BASE % "blue")
    broken = gw.conf_path.read_text().replace("cluster: blue}}\n  - {match: {path: {exact: /slow",
                                              "cluster: bleu}}\n  - {match: {path: {exact: /slow")
    gw.reload(broken.replace("prefix: /x", "prefx: /x"), wait_for="reload of")
    log = gw.log()
    assert "still serving version 1" in log
    assert "routes[0].match.path: unknown key 'prefx' (did you mean 'prefix'?)" in log
    assert "routes[0].proxy.cluster: unknown cluster 'bleu' (did you mean 'blue'?)" in log
    assert "Traceback" not in log
    assert gw.request(path="/x")[:3:2] == (200, BLUE)
    fixed = broken.replace("prefx", "prefix").replace("bleu", "green")
    gw.reload(fixed + "admin: {address: '127.0.0.1:1'}\n",
              wait_for="admin: changed, but only a restart applies this section")
    assert gw.request(path="/x")[:3:2] == (200, BLUE)
    gw.reload(fixed, wait_for="configuration version 2 applied")
    assert gw.request(path="/x")[2] == GREEN


HEALTH = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  pair:
    backends: [{address: "127.0.0.1:{silent}"}, {address: "{blue}"}]
    health_check: {type: http, interval: 30, timeout: 1}
    timeouts: {read: 0.5}
    retries: 0
routes:
  - {match: {path: {prefix: /a}}, proxy: {cluster: pair}}
"""


def test_health_is_kept_for_backends_that_stay(gateway_run, lab):
    # A backend that accepts connections and never answers: its HTTP check takes the
    # whole 1 s timeout to fail, so a balancer that forgot its health would send it
    # requests (answered 504) for a second after each reload.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        gw = gateway_run(HEALTH, silent=silent.getsockname()[1])
        gw.wait_log("becomes unhealthy")
        assert {gw.request(path="/a")[0] for _ in range(6)} == {200}
        # Only a route changed: the cluster is the same object, with its health.
        gw.reload(gw.conf_path.read_text().replace("prefix: /a", "prefix: /b"),
                  wait_for="configuration version 2 applied")
        assert {gw.request(path="/b")[0] for _ in range(6)} == {200}
        # The cluster changed (green added): the silent backend stays out of rotation.
        host, port = lab.address("green")
        text = gw.conf_path.read_text().replace("backends: [", f'backends: [{{address: "{host}:{port}"}}, ', 1)
        gw.reload(text, wait_for="configuration version 3 applied")
        answers = [gw.request(path="/b") for _ in range(8)]
        assert [s for s, _, _ in answers] == [200] * 8
        assert {b for _, _, b in answers} == {BLUE, GREEN}
    finally:
        silent.close()


def test_five_reloads_under_wrk_load_fail_no_request(gateway_run, lab):
    """wrk keeps 32 connections busy while the file changes five times (a route moved,
    a route added, backends changed, a route removed, back again); each change is live
    within 1 s and wrk counts no error and no non-2xx answer."""
    import re
    import subprocess

    gw = gateway_run(BASE % "blue")
    blue, green = ("{}:{}".format(*lab.address(n)) for n in ("blue", "green"))
    base = gw.conf_path.read_text()
    changes = [
        (base.replace("cluster: blue}}\n  - {match: {path: {exact: /slow", "cluster: green}}\n  - {match: {path: {exact: /slow"),
         "/x", GREEN),
        (base.replace("routes:\n", "routes:\n  - {match: {path: {exact: /new}}, respond: {status: 200, body: new}}\n"),
         "/new", b"new"),
        (base.replace(f'blue: {{backends: [{{address: "{blue}"}}]}}', f'blue: {{backends: [{{address: "{green}"}}]}}'),
         "/x", GREEN),
        (base, "/x", BLUE),
        (base.replace("cluster: blue}}\n  - {match: {path: {exact: /slow", "cluster: green}}\n  - {match: {path: {exact: /slow"),
         "/x", GREEN),
    ]
    wrk = subprocess.Popen(["wrk", "-t1", "-c32", "-d8s", f"http://127.0.0.1:{gw.port}/x"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)
    for version, (text, path, expected) in enumerate(changes, start=2):
        signalled = time.monotonic()
        gw.reload(text)
        while gw.request(path=path)[2] != expected:
            assert time.monotonic() - signalled < 1.0, f"change {version} not live within 1 s of SIGHUP"
            time.sleep(0.02)
        gw.wait_log(f"configuration version {version} applied")
        time.sleep(0.8)
    out, _ = wrk.communicate(timeout=30)
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    assert int(re.search(r"(\d+) requests in", out).group(1)) > 1000, out
