"""The request engine runs unchanged over HTTP/2 streams: curl speaks h2c (prior
knowledge) to the proxy app, whose HTTP/2 streams the engine proxies to the lab's
HTTP/1 member ``blue``."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from propylon.protocols.http.v1.server import HttpServerOptions
from propylon.proxy.proxy_trait import ProxyHttp
from propylon.upstreams.peer import HttpPeer
from support import pattern, run_curl

pytestmark = pytest.mark.timeout(60)


class _ToBlue(ProxyHttp):
    def __init__(self, address) -> None:
        self.address = address

    def new_ctx(self) -> None:
        return None

    async def upstream_peer(self, session, ctx) -> HttpPeer:
        return HttpPeer(self.address, False, "")


def test_engine_proxies_h2_streams_to_an_http1_upstream(lab, tmp_path, start_proxy):
    up = pattern(3_000_000)
    (tmp_path / "up.bin").write_bytes(up)
    s = start_proxy(_ToBlue(lab.address("blue")), options=HttpServerOptions(h2c=True))
    base = s.url
    r = run_curl("--http2-prior-knowledge", "-i", f"{base}/echo?q=1", "-H", "X-Trace: t1")
    assert r.stdout.startswith(b"HTTP/2 200"), r.stderr
    doc = json.loads(r.stdout.partition(b"\r\n\r\n")[2])
    sent = {k.lower(): v for k, v in doc["headers"]}
    assert doc["member"] == "blue" and doc["target"] == "/echo?q=1"
    assert sent["host"] == f"127.0.0.1:{s.port}" and sent["x-trace"] == "t1"
    r = run_curl("--http2-prior-knowledge", "--data-binary", f"@{tmp_path / 'up.bin'}", f"{base}/echo")
    doc = json.loads(r.stdout)
    assert doc["body_length"] == len(up) and doc["body_sha256"] == hashlib.sha256(up).hexdigest()
    r = run_curl("--http2-prior-knowledge", "-o", str(tmp_path / "down.bin"), "-w", "%{http_code}",
                 f"{base}/size?bytes=20000000")
    assert r.stdout == b"200"
    assert (tmp_path / "down.bin").read_bytes() == pattern(20_000_000)
    r = subprocess.run(["h2load", "-n", "300", "-c", "3", "-m", "10", f"{base}/"],
                       capture_output=True, text=True, timeout=60)
    assert "300 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout


def test_an_error_answer_ends_its_stream_with_the_head(start_proxy):
    # A 502 for a dead origin over HTTP/2: one HEADERS frame carrying END_STREAM
    # (no empty DATA frame after it), the same fields as over HTTP/1.
    from proxy_support import dead_port

    s = start_proxy(_ToBlue(("127.0.0.1", dead_port())), options=HttpServerOptions(h2c=True))
    r = subprocess.run(["nghttp", "-nv", f"{s.url}/"], capture_output=True, text=True, timeout=30)
    frames = [line for line in r.stdout.splitlines() if "recv " in line and "frame <" in line]
    ours = [f for f in frames if "stream_id=13" in f]
    assert [f.split("recv ")[1].split(" frame")[0] for f in ours] == ["HEADERS"], r.stdout
    assert "END_STREAM" in r.stdout.split("recv HEADERS frame <length=")[1].split("\n")[1], r.stdout
    for field in (":status: 502", "content-length: 0", "cache-control: private, no-store", "server: Propylon"):
        assert field in r.stdout, r.stdout
