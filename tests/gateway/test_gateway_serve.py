"""The gateway serving over loopback in front of the lab: routing, actions, weights, errors."""

from __future__ import annotations

import json
import socket
from collections import Counter

from gateway_support import fill
from support import free_port

BLUE, GREEN = b"Response from BLUE", b"Response from GREEN"

ROUTING = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  blue: {backends: [{address: "{blue}"}]}
  green: {backends: [{address: "{green}"}]}
  both:
    backends: [{address: "{blue}", weight: 3}, {address: "{green}", weight: 1}]
    selection: weighted
routes:
  - {match: {hosts: [blue.test]}, proxy: {cluster: blue}}
  - {match: {hosts: ["*.green.test"]}, proxy: {cluster: green}}
  - {match: {path: {exact: /healthz}}, respond: {status: 200, body: "ok\\n", headers: {X-Fixed: "yes"}}}
  - match: {path: {regex: "/docs/(?P<page>[a-z]+)"}}
    redirect: {location: "https://{host}/guide/{page}{query}", status: 301}
  - match: {path: {prefix: /api/}}
    rewrite: {strip_prefix: /api}
    headers:
      request: {set: {X-Route: api}, remove: [X-Secret]}
      response: {add: {X-Served-By: propylon}}
    proxy: {cluster: blue}
  - {match: {path: {prefix: /g/}}, rewrite: {regex: {pattern: "^/g/(?P<rest>.*)$", replacement: "/\\\\g<rest>"}}, proxy: {cluster: green}}
  - {match: {path: {prefix: /weighted}}, proxy: {cluster: both}}
"""


def test_host_and_path_routing_and_fixed_and_redirect(gateway_run):
    gw = gateway_run(ROUTING)
    assert gw.request(headers={"Host": "blue.test"})[2] == BLUE
    assert gw.request(headers={"Host": "shop.green.test:8080"})[2] == GREEN
    status, headers, body = gw.request(path="/healthz")
    assert (status, body, headers["x-fixed"]) == (200, b"ok\n", "yes")
    status, headers, _ = gw.request(path="/docs/intro?lang=en", headers={"Host": "site.test"})
    assert (status, headers["location"]) == (301, "https://site.test/guide/intro?lang=en")
    status, _, body = gw.request(path="/nowhere")
    assert (status, body) == (404, b"no route for this request\n")


def test_rewrite_and_header_rules(gateway_run):
    gw = gateway_run(ROUTING)
    status, headers, body = gw.request(path="/api/echo?x=1", headers={"X-Secret": "s", "X-Keep": "k"})
    echo = json.loads(body)
    sent = {k.lower(): v for k, v in echo["headers"]}
    assert status == 200 and echo["target"] == "/echo?x=1"
    assert sent["x-route"] == "api" and sent["x-keep"] == "k" and "x-secret" not in sent
    assert headers["x-served-by"] == "propylon"
    assert json.loads(gw.request(path="/g/echo")[2])["path"] == "/echo"


def test_weights_three_to_one_over_400_requests(gateway_run):
    gw = gateway_run(ROUTING)
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    bodies = []
    for _ in range(400):
        conn.request("GET", "/weighted")
        resp = conn.getresponse()
        assert resp.status == 200
        bodies.append(resp.read())
    conn.close()
    assert Counter(bodies) == {BLUE: 300, GREEN: 100}


def test_refused_connection_moves_to_the_next_backend(gateway_run):
    dead = free_port()  # nothing listens there
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  flaky: {backends: [{address: "127.0.0.1:{dead}"}, {address: "{blue}"}], retries: 1}
routes: [{proxy: {cluster: flaky}}]
""", dead=dead)
    results = [gw.request(method="POST", body=b"x") for _ in range(10)]
    assert [(s, b) for s, _, b in results] == [(200, BLUE)] * 10


def test_upstream_timeout_is_504_and_no_backend_is_503(gateway_run):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts (in the backlog) and never answers
    try:
        gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  silent: {backends: [{address: "127.0.0.1:{silent}"}], timeouts: {read: 0.5}}
  down:
    backends: [{address: "127.0.0.1:{dead}"}]
    health_check: {type: tcp, interval: 0.2}
routes:
  - {match: {path: {prefix: /silent}}, proxy: {cluster: silent}}
  - {match: {path: {prefix: /down}}, proxy: {cluster: down}}
""", silent=silent.getsockname()[1], dead=free_port())
        assert gw.request(path="/silent")[0] == 504
        gw.wait_log("becomes unhealthy")
        assert gw.request(path="/down")[0] == 503
    finally:
        silent.close()


def test_run_t_on_a_served_file_matches(lab, tmp_path):
    import subprocess
    import sys

    from gateway_support import REPO

    conf = tmp_path / "g.yaml"
    conf.write_text(fill(ROUTING, lab, free_port()))
    out = subprocess.run([sys.executable, "-m", "propylon", "run", "-t", "-c", str(conf)],
                         cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "host blue.test" in out.stdout and "host *.green.test" in out.stdout


def test_the_shipped_example_config_against_the_lab(gateway_run, lab, tmp_path):
    """conf/gateway.yaml as shipped, with the lab's and free ports put in place of the fixed ones."""
    import base64
    import shutil
    import urllib.request

    from gateway_support import REPO

    text = (REPO / "conf" / "gateway.yaml").read_text()
    metrics = free_port()
    text = (text.replace("127.0.0.1:18080", "{blue}").replace("127.0.0.1:18081", "{green}")
            .replace("127.0.0.1:6188", "127.0.0.1:{port}").replace("127.0.0.1:6192", f"127.0.0.1:{metrics}")
            .replace("127.0.0.1:6191", f"127.0.0.1:{free_port()}"))
    shutil.copy(REPO / "conf" / "gateway_plugins.py", tmp_path)  # beside the file, as in conf/
    gw = gateway_run(text)
    assert gw.request(path="/healthz")[:3:2] == (200, b"ok\n")
    assert gw.request(headers={"Host": "blue.propylon.test"})[2] == BLUE
    assert gw.request(headers={"Host": "www.green.propylon.test"})[2] == GREEN
    status, headers, _ = gw.request(path="/docs/setup?x=1")
    assert (status, headers["location"]) == (301, "/guide/setup?x=1")
    status, headers, body = gw.request(path="/api/echo", headers={"Origin": "https://app.propylon.test"})
    assert status == 200 and json.loads(body)["path"] == "/echo"
    assert headers["access-control-allow-origin"] == "https://app.propylon.test"
    assert headers["x-served-by"] == "propylon" and "server" not in headers and "x-request-id" in headers
    assert gw.request(path="/private/x")[0] == 401
    assert gw.request(path="/private/x", headers={"Authorization": "Bearer s3cret-token"})[0] == 200
    auth = "Basic " + base64.b64encode(b"admin:change-me").decode()
    assert gw.request(path="/admin/x")[0] == 401
    assert gw.request(path="/admin/x", headers={"Authorization": auth})[:3:2] == (200, BLUE)
    assert gw.request(path="/tagged/x")[1]["x-plugin"] == "hello"
    visitors = [{"Cookie": f"session=visitor-{i}"} for i in range(40)]
    sides = [body for _, _, body in gw.request_many([("/shop/", h) for h in visitors])]
    assert [body for _, _, body in gw.request_many([("/shop/", h) for h in visitors])] == sides
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as r:
        assert r.status == 200
