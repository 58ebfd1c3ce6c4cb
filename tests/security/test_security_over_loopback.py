"""The edge building blocks driven by curl over loopback (lessons 36-42 in miniature)."""

import shutil
import subprocess

import pytest
from edge_http_server import EdgeConfig

from propylon.limits import Rate
from propylon.security import IpAccessList

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


def curl(*args: str) -> str:
    out = subprocess.run(
        ["curl", "-s", "--max-time", "5", *args], capture_output=True, text=True, timeout=10, check=False
    )
    return out.stdout


def status(*args: str) -> int:
    return int(curl("-o", "/dev/null", "-w", "%{http_code}", *args))


def test_second_loopback_client_is_denied(edge_server):
    server = edge_server(EdgeConfig(acl=IpAccessList(deny=["127.0.0.2"])))
    assert status(server.url("/rate")) == 200
    assert status("--interface", "127.0.0.2", server.url("/rate")) == 403


def test_allow_list_with_ipv6_loopback(edge_server):
    server = edge_server(EdgeConfig(acl=IpAccessList(allow=["127.0.0.1/32", "::1"])))
    assert status(server.url("/rate")) == 200
    assert status("--interface", "127.0.0.2", server.url("/rate")) == 403
    if server.port6 is None:
        pytest.skip("no IPv6 loopback on this host")
    assert status("-g", f"http://[::1]:{server.port6}/rate") == 200
    denied6 = edge_server(EdgeConfig(acl=IpAccessList(allow=["127.0.0.0/8"])))
    assert status("-g", f"http://[::1]:{denied6.port6}/rate") == 403


def test_basic_auth_with_curl(edge_server):
    server = edge_server()
    head = curl("-D", "-", "-o", "/dev/null", server.url("/basic"))
    assert head.startswith("HTTP/1.1 401")
    assert 'www-authenticate: basic realm="pingoraproxy"' in head.lower()
    assert status("-u", "admin:wrong", server.url("/basic")) == 403
    assert status("-u", "mallory:password", server.url("/basic")) == 403
    assert status("-H", "Authorization: Basic ###", server.url("/basic")) == 403
    assert curl("-u", "admin:password", server.url("/basic")) == "hello admin"


def test_bearer_auth_with_curl(edge_server):
    server = edge_server()
    head = curl("-D", "-", "-o", "/dev/null", server.url("/bearer"))
    assert head.startswith("HTTP/1.1 401") and "www-authenticate: bearer" in head.lower()
    assert status("-H", "Authorization: Bearer bad-token", server.url("/bearer")) == 403
    assert status("-H", "Authorization: Bearer super-secret-token", server.url("/bearer")) == 200
    assert status("--oauth2-bearer", "super-secret-token", server.url("/bearer")) == 200


def test_body_size_declared_and_streamed(edge_server):
    cfg = EdgeConfig(max_body=100)
    server = edge_server(cfg)
    assert curl("-d", "tiny", server.url("/upload")) == "received 4"
    payload = "a" * 150
    # Fast path: Content-Length: 150 is refused before the body is read.
    assert curl("-d", payload, server.url("/upload")) == "declared too large"
    # Slow path: chunked, no declared length; counted while streaming.
    assert curl("-H", "Transfer-Encoding: chunked", "-d", payload, server.url("/upload")) == "streamed too large"
    assert status("-H", "Transfer-Encoding: chunked", "-d", payload, server.url("/upload")) == 413
    assert curl("-H", "Transfer-Encoding: chunked", "-d", "a" * 100, server.url("/upload")) == "received 100"
    # The declared-length refusal read no body; the streamed ones stopped past 100.
    first, *streamed, last = cfg.body_bytes_seen
    assert (first, len(streamed), last) == (4, 2, 100)
    assert all(100 < seen <= 150 for seen in streamed)


def test_fixed_window_rate_limit_burst(edge_server):
    # Lesson 36: ten quick requests, five per window admitted.
    server = edge_server(EdgeConfig(rate=Rate(60), rate_limit=5))
    codes = curl("-o", "/dev/null", "-w", "%{http_code}\n", *[server.url("/rate")] * 10).split()
    assert codes == ["200"] * 5 + ["429"] * 5
    # Another client address has its own budget.
    assert status("--interface", "127.0.0.2", server.url("/rate")) == 200


def test_inflight_limit_with_parallel_clients(edge_server):
    # Lesson 38: five at once against a limit of two.
    cfg = EdgeConfig(inflight_limit=2, hold=0.6)
    server = edge_server(cfg)
    procs = [
        subprocess.Popen(
            ["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", server.url("/slow")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    codes = sorted(p.communicate(timeout=10)[0] for p in procs)
    assert codes == ["200", "200", "429", "429", "429"]
    assert cfg.inflight.get("global") == 0
