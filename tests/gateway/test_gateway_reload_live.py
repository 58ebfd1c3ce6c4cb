"""Five live changes under wrk load, by SIGHUP, by editing the file and through the admin
API (a route moved, a route added, backends changed, a listener added, a route removed):
no failed request, each change live within 1 s, and an open WebSocket and an HTTP/2
stream (a response still streaming) carry on through all five."""

from __future__ import annotations

import http.client
import re
import signal
import socketserver
import subprocess
import threading
import time

from support import free_port

BLUE, GREEN = b"Response from BLUE", b"Response from GREEN"
TOKEN = "live-reload-token-0123456789"
TICKS = 200          # the streaming response: one chunk every 0.1 s, 20 s in all

CONF = """\
listeners:
  - {name: web, address: "127.0.0.1:{port}", h2c: true}
admin: {address: "127.0.0.1:{admin}", token: "%s"}
clusters:
  blue: {backends: [{address: "{blue}"}]}
  green: {backends: [{address: "{green}"}]}
  ws: {backends: [{address: "{ws}"}]}
  drip: {backends: [{address: "127.0.0.1:{drip}"}], timeouts: {read: 30}}
routes:
  - {name: x, match: {path: {prefix: /x}}, proxy: {cluster: blue}}
  - {name: ws, match: {path: {prefix: /ws}}, proxy: {cluster: ws}}
  - {name: drip, match: {path: {exact: /drip}}, proxy: {cluster: drip}}
""" % TOKEN


class Drip(socketserver.StreamRequestHandler):
    """An upstream answering with a chunked body of TICKS lines, one every 0.1 s."""

    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(TICKS):
            line = f"tick {i}\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            time.sleep(0.1)
        self.wfile.write(b"0\r\n\r\n")


class Echoes(threading.Thread):
    """One WebSocket through the gateway, echoing a message every 0.2 s until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.opened = threading.Event()
        self.stop = threading.Event()
        self.ok = 0
        self.failure: str | None = None

    def run(self) -> None:
        from websockets.sync.client import connect

        try:
            with connect(self.url, open_timeout=5) as ws:
                self.opened.set()
                while not self.stop.wait(0.2):
                    message = f"ping {self.ok}"
                    ws.send(message)
                    assert ws.recv(timeout=5) == message
                    self.ok += 1
        except Exception as e:  # recorded, asserted by the test
            self.failure = repr(e)


def admin_put(port: int, text: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("PUT", "/api/config", body=text.encode(),
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/yaml"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def answer(port: int, path: str) -> bytes | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return body if resp.status == 200 else str(resp.status).encode()
    except OSError:
        return None


def test_five_live_changes_under_load_keep_websocket_and_h2_stream(gateway_run, lab):
    drip = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Drip)
    drip.daemon_threads = True
    threading.Thread(target=drip.serve_forever, daemon=True).start()
    admin, extra = free_port(), free_port()
    host, ws_port = lab.address("websocket")
    gw = gateway_run(CONF, admin=admin, ws=f"{host}:{ws_port}", drip=drip.server_address[1])
    base = gw.conf_path.read_text()
    blue, green = ("{}:{}".format(*lab.address(n)) for n in ("blue", "green"))
    try:
        stream = subprocess.Popen(["curl", "-sS", "-N", "--http2-prior-knowledge", "-w", "%{http_version}",
                                   f"http://127.0.0.1:{gw.port}/drip"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        echoes = Echoes(f"ws://127.0.0.1:{gw.port}/ws")
        echoes.start()
        assert echoes.opened.wait(5), echoes.failure
        wrk = subprocess.Popen(["wrk", "-t1", "-c64", "-d16s", f"http://127.0.0.1:{gw.port}/x"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)

        moved = base.replace("proxy: {cluster: blue}", "proxy: {cluster: green}")
        added = moved.replace("routes:\n", "routes:\n  - {name: new, match: {path: {exact: /new}}, "
                                           "respond: {status: 200, body: new}}\n")
        rebacked = added.replace(f'green: {{backends: [{{address: "{green}"}}]}}',
                                 f'green: {{backends: [{{address: "{blue}"}}]}}')
        listener = rebacked.replace("h2c: true}\n", f'h2c: true}}\n  - {{name: extra, address: "127.0.0.1:{extra}"}}\n')
        removed = listener.replace("  - {name: new, match: {path: {exact: /new}}, respond: {status: 200, body: new}}\n", "")

        def by_sighup(text: str) -> None:
            gw.conf_path.write_text(text)
            gw.popen.send_signal(signal.SIGHUP)

        def by_file(text: str) -> None:
            gw.conf_path.write_text(text)

        def by_api(text: str) -> None:
            assert admin_put(admin, text) == 200

        changes = [
            ("route moved (SIGHUP)", by_sighup, moved, lambda: answer(gw.port, "/x") == GREEN),
            ("route added (file edit)", by_file, added, lambda: answer(gw.port, "/new") == b"new"),
            ("backends changed (admin API)", by_api, rebacked, lambda: answer(gw.port, "/x") == BLUE),
            ("listener added (SIGHUP)", by_sighup, listener, lambda: answer(extra, "/x") == BLUE),
            ("route removed (admin API)", by_api, removed, lambda: answer(gw.port, "/new") == b"404"),
        ]
        took = {}
        for name, apply, text, live in changes:
            started = time.monotonic()
            apply(text)
            while not live():
                assert time.monotonic() - started < 1.0, f"{name}: not live within 1 s"
                time.sleep(0.02)
            took[name] = round(time.monotonic() - started, 3)
            time.sleep(1.5)
        assert max(took.values()) < 1.0, took
        print("seconds until live:", took)

        out, _ = wrk.communicate(timeout=40)
        assert "Non-2xx" not in out and "Socket errors" not in out, out
        assert int(re.search(r"(\d+) requests in", out).group(1)) > 1000, out
        print("wrk:", re.search(r"\d+ requests in [^\n]*", out).group(0))

        assert echoes.is_alive() and echoes.failure is None, echoes.failure
        echoes.stop.set()
        echoes.join(5)
        assert echoes.failure is None and echoes.ok > 40, (echoes.ok, echoes.failure)

        body, err = stream.communicate(timeout=30)
        assert stream.returncode == 0, err
        assert body.splitlines() == [f"tick {i}" for i in range(TICKS)] + ["2"]  # all of it, over HTTP/2
        # (a SIGHUP and the file watch may both apply one edit: the version is the same)
        versions = sorted({int(v) for v in re.findall(r"configuration version (\d+) applied", gw.log())})
        assert versions == [2, 3, 4, 5, 6], versions
        assert "Traceback" not in gw.log()
    finally:
        drip.shutdown()
        drip.server_close()
