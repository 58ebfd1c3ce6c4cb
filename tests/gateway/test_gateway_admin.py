"""The admin API, listeners opened and closed by reloads, the last good file and workers'
versions, each against a real ``propylon run -c`` process over loopback."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from gateway_support import wait_until
from support import REPO, free_port

BLUE, GREEN = b"Response from BLUE", b"Response from GREEN"
TOKEN = "s3cret-token-for-tests"

CONF = """\
# The admin test's gateway: comments like this one must survive API edits.
listeners:
  - {name: web, address: "127.0.0.1:{port}"}   # the public side
admin: {address: "127.0.0.1:{admin}", token: "%s"}
clusters:
  # blue is the default
  blue: {backends: [{address: "{blue}"}]}
  green: {backends: [{address: "{green}"}]}
routes:
  - {name: main, match: {path: {prefix: /}}, proxy: {cluster: blue}}
""" % TOKEN


class Admin:
    def __init__(self, port: int, token: str | None = TOKEN) -> None:
        self.port, self.token = port, token

    def call(self, method: str, path: str, body: bytes | str | None = None,
             ctype: str = "text/yaml", token: str | None = "default") -> tuple[int, dict]:
        token = self.token if token == "default" else token
        headers = {"Content-Type": ctype}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, json.loads(data) if data else {}
        finally:
            conn.close()


def body_of(port: int, path: str = "/") -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.read() if resp.status == 200 else str(resp.status).encode()
    finally:
        conn.close()


def test_admin_api_auth_get_put_dry_run_invalid_history_rollback(gateway_run):
    admin = Admin(free_port())
    gw = gateway_run(CONF, admin=admin.port)
    original = gw.conf_path.read_text()

    assert admin.call("GET", "/api/config", token=None)[0] == 401
    assert admin.call("GET", "/api/config", token="wrong-token-wrong-token")[0] == 401
    status, got = admin.call("GET", "/api/config")
    assert status == 200 and got["version"] == 1 and got["text"] == original

    added = original.replace("routes:\n", "routes:\n  - {name: g, match: {path: {prefix: /g}}, "
                                          "proxy: {cluster: green}}\n")
    status, got = admin.call("PUT", "/api/config?dry_run=1", added)
    assert status == 200 and got["dry_run"] is True
    assert any(line.startswith("+") and "/g" in line and "green" in line
               for line in got["routes_diff"].splitlines())
    assert gw.conf_path.read_text() == original and body_of(gw.port, "/g") == BLUE  # nothing applied

    status, got = admin.call("PUT", "/api/config?dry_run=1", added.replace("prefix: /g", "prefx: /g"))
    assert status == 400
    assert got["errors"] == [{"path": "routes[0].match.path", "message": "unknown key 'prefx' (did you mean 'prefix'?)"}]
    status, got = admin.call("PUT", "/api/config", added.replace("cluster: green", "cluster: gren"))
    assert status == 400 and got["errors"][0]["path"] == "routes[0].proxy.cluster"
    assert gw.conf_path.read_text() == original and body_of(gw.port, "/g") == BLUE  # old one serving

    # A JSON document is merged into the file: comments and order stay.
    import yaml

    document = yaml.safe_load(original)
    document["routes"].insert(0, {"name": "g", "match": {"path": {"prefix": "/g"}}, "proxy": {"cluster": "green"}})
    status, got = admin.call("PUT", "/api/config", json.dumps(document), ctype="application/json")
    assert status == 200 and got["version"] == 2, got
    assert body_of(gw.port, "/g") == GREEN and body_of(gw.port, "/x") == BLUE
    text = gw.conf_path.read_text()
    for comment in ("# The admin test's gateway", "# the public side", "# blue is the default"):
        assert comment in text
    assert text.index("listeners:") < text.index("admin:") < text.index("clusters:") < text.index("routes:")
    assert yaml.safe_load(text) == document

    status, got = admin.call("GET", "/api/history")
    assert [v["version"] for v in got["versions"]] == [2, 1] and got["current"] == 2
    assert got["versions"][0]["who"] == "admin API from 127.0.0.1" and got["versions"][1]["who"] == "start"

    status, got = admin.call("POST", "/api/rollback?version=1")
    assert status == 200 and got["version"] == 3
    assert body_of(gw.port, "/g") == BLUE and gw.conf_path.read_text() == original
    assert admin.call("GET", "/api/history")[1]["versions"][0]["who"].endswith("rollback to version 1")
    assert admin.call("POST", "/api/rollback?version=99")[0] == 404

    status, got = admin.call("GET", "/api/routes")
    assert status == 200 and [r["route"] for r in got["routes"]] == ["main"]
    status, got = admin.call("GET", "/api/clusters")
    assert {c["name"] for c in got["clusters"]} == {"blue", "green"}
    status, got = admin.call("GET", "/api/workers")
    assert [(w["pid"], w["version"]) for w in got["workers"]] == [(gw.popen.pid, 3)]
    status, got = admin.call("POST", "/api/cache/purge")
    assert (status, got["purged"], got["routes"]) == (200, 0, [])  # no route caches here
    assert "Traceback" not in gw.log()


def test_admin_refuses_to_listen_off_loopback_without_a_token(tmp_path, lab):
    conf = tmp_path / "gw.yaml"
    conf.write_text(CONF.replace(f', token: "{TOKEN}"', "").replace("127.0.0.1:{admin}", "0.0.0.0:9180")
                    .replace("{port}", str(free_port())).replace("{blue}", "127.0.0.1:1").replace("{green}", "127.0.0.1:1"))
    out = subprocess.run([sys.executable, "-m", "propylon", "run", "-c", str(conf)], cwd=REPO, capture_output=True,
                         text=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    assert out.returncode == 1
    assert "admin: a 'token' is required to serve the admin API on 0.0.0.0:9180" in out.stderr
    assert "Traceback" not in out.stderr


LISTENERS = """
listeners:
  - {name: web, address: "127.0.0.1:{port}"}
%s
clusters:
  blue: {backends: [{address: "{blue}"}]}
routes:
  - {match: {path: {prefix: /}}, proxy: {cluster: blue}}
"""


def test_listener_added_by_reload_serves_and_removed_one_refuses_new_connections(gateway_run):
    extra = free_port()
    gw = gateway_run(LISTENERS % "")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", extra), timeout=2).close()
    line = f'  - {{name: extra, address: "127.0.0.1:{extra}"}}'
    with_extra = gw.conf_path.read_text().replace("\n\nclusters:", f"\n{line}\nclusters:")
    signalled = time.monotonic()
    gw.reload(with_extra)
    assert wait_until(lambda: _try(extra) == BLUE, 1.0, "the added listener serving")
    assert time.monotonic() - signalled < 1.0

    kept = http.client.HTTPConnection("127.0.0.1", extra, timeout=5)  # keep-alive, open across the removal
    kept.request("GET", "/")
    assert kept.getresponse().read() == BLUE
    gw.reload(with_extra.replace(line, ""),
              wait_for="listener extra on")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", extra), timeout=2).close()
    kept.request("GET", "/")  # the connection accepted before finishes its work
    resp = kept.getresponse()
    assert (resp.status, resp.read()) == (200, BLUE), resp.getheaders()
    kept.close()
    assert body_of(gw.port) == BLUE


def _try(port: int) -> bytes | None:
    try:
        return body_of(port)
    except OSError:
        return None


def test_last_good_copy_is_used_when_the_file_is_broken_at_start(gateway_run, tmp_path):
    gw = gateway_run(LISTENERS % "")
    good = gw.conf_path.read_text()
    gw.stop()
    gw.conf_path.write_text(good.replace("prefix: /", "prefx: /"))
    from gateway_support import GatewayProcess

    again = GatewayProcess(gw.conf_path, gw.port, tmp_path / "again.log")
    try:
        again.wait_ready()
        assert body_of(gw.port) == BLUE
        log = again.log()
        assert "STARTING FROM THE LAST GOOD COPY" in log
        assert "routes[0].match.path: unknown key 'prefx'" in log
        gw.conf_path.write_text(good.replace("prefix: /", "prefix: /only"))  # the file watch applies it
        assert wait_until(lambda: body_of(gw.port) == b"404", 2.0, "the fixed file applied")
    finally:
        again.stop()


def test_threads_two_workers_both_report_the_new_version(gateway_run):
    admin = Admin(free_port())
    gw = gateway_run(CONF.replace("listeners:", "server: {threads: 2}\nlisteners:"), admin=admin.port)

    def versions() -> list:
        return sorted(w["version"] for w in admin.call("GET", "/api/workers")[1]["workers"])

    assert wait_until(lambda: versions() == [1, 1], 10, "two workers on version 1")
    gw.conf_path.write_text(gw.conf_path.read_text().replace("cluster: blue}", "cluster: green}"))
    gw.popen.send_signal(signal.SIGHUP)  # to the master, which passes it on
    assert wait_until(lambda: versions() == [2, 2], 2, "both workers on version 2")
    assert all(body_of(gw.port) == GREEN for _ in range(20))
    # SIGHUP with the file unchanged: only the master's relay makes each worker reload.
    before = gw.log().count("(SIGHUP; reload")
    gw.popen.send_signal(signal.SIGHUP)
    lines = wait_until(lambda: [line for line in gw.log().splitlines() if "(SIGHUP; reload" in line][before:]
                       if gw.log().count("(SIGHUP; reload") >= before + 2 else None, 3, "both workers reloading")
    assert len({line.split("[")[1].split("]")[0] for line in lines}) == 2, lines
    # A worker that dies is restarted on the current version, not the one the master loaded.
    pids = [w["pid"] for w in admin.call("GET", "/api/workers")[1]["workers"]]
    os.kill(pids[0], signal.SIGKILL)
    assert wait_until(lambda: len({w["pid"] for w in admin.call("GET", "/api/workers")[1]["workers"]} - set(pids)) == 1
                      and versions() == [2, 2], 10, "the restarted worker on version 2")
    assert all(body_of(gw.port) == GREEN for _ in range(20))
