"""HTTP/2 through the engine: h2 and h2c downstream, h2/h2c upstream, translation
both ways, multiplexing, gRPC with its trailers, and h2load."""

from __future__ import annotations

import json
import os
import subprocess

import grpc
import pytest

from propylon import ALPN, HttpPeer, PeerOptions, ProxyHttp
from propylon.protocols.http.v1.server import HttpServerOptions
from propylon.protocols.tls import TlsSettings


class To(ProxyHttp):
    def __init__(self, addr, tls: bool = False, sni: str = "", options: PeerOptions | None = None) -> None:
        self.addr, self.tls, self.sni, self.options = addr, tls, sni, options
        self.digests: list = []

    async def upstream_peer(self, session, ctx):
        return HttpPeer(self.addr, self.tls, self.sni, self.options)

    async def connected_to_upstream(self, session, reused, peer, digest, ctx):
        self.digests.append(digest)


def tls_context(lab) -> object:
    d = str(lab.certs.dir)
    settings = TlsSettings.intermediate(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    settings.enable_h2()
    return settings.build_context()


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", *args], capture_output=True, text=True, timeout=30)


def test_h2_downstream_over_tls_to_h1_upstream(lab, start_proxy):
    p = start_proxy(To(lab.address("blue")), ssl=tls_context(lab))
    ca = os.path.join(str(lab.certs.dir), "ca.crt")
    out = curl("--http2", "--cacert", ca, f"https://localhost:{p.port}/echo", "-w", "\n%{http_version}")
    body, version = out.stdout.rsplit("\n", 1)
    assert version == "2"
    doc = json.loads(body)
    assert doc["protocol"] == "HTTP/1.1"  # translated for the HTTP/1 origin
    assert doc["headers"][0][0].lower() == "host"


def test_h2c_prior_knowledge_and_http1_on_one_port(lab, start_proxy):
    p = start_proxy(To(lab.address("blue")), options=HttpServerOptions(h2c=True))
    out = curl("--http2-prior-knowledge", p.url + "/", "-w", " %{http_version}")
    assert out.stdout == "Response from BLUE 2"
    out = curl(p.url + "/", "-w", " %{http_version}")
    assert out.stdout == "Response from BLUE 1.1"


def test_h1_downstream_to_h2c_upstream(lab, start_proxy):
    p = start_proxy(To(lab.address("advanced-h2c"), options=PeerOptions(alpn=ALPN.H2)))
    out = curl(p.url + "/", "-o", "/dev/null", "-w", "%{http_code} %{http_version}")
    assert out.stdout == "200 1.1"


def test_h2_upstream_chosen_by_alpn(lab, start_proxy):
    ca = os.path.join(str(lab.certs.dir), "ca.crt")
    proxy = To(lab.address("advanced-https"), True, "advanced.propylon.test",
               PeerOptions(alpn=ALPN.H2H1, ca_file=ca))
    p = start_proxy(proxy)
    assert curl(p.url + "/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
    assert proxy.digests[0].tls.alpn == "h2"


def test_streams_multiplexed_over_one_upstream_connection(lab, start_proxy):
    # 32 concurrent client streams, room for 20 per upstream connection: two connections.
    proxy = To(lab.address("advanced-h2c"), options=PeerOptions(alpn=ALPN.H2, max_h2_streams=20))
    p = start_proxy(proxy, options=HttpServerOptions(h2c=True))
    out = subprocess.run(["h2load", "-n", "320", "-c", "4", "-m", "8", p.url + "/"],
                         capture_output=True, text=True, timeout=60)
    assert "320 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout
    conns = p.app.engine.connector._h2
    assert sum(len(v) for v in conns.values()) == 2


def test_h2load_against_tls_h2_listener(lab, start_proxy):
    p = start_proxy(To(lab.address("blue")), ssl=tls_context(lab))
    out = subprocess.run(["h2load", "-n", "1000", "-c", "10", "-m", "10", f"https://127.0.0.1:{p.port}/"],
                         capture_output=True, text=True, timeout=120)
    assert "1000 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout
    assert "Application protocol: h2" in out.stdout


@pytest.mark.parametrize("upstream", ["grpc", "grpcs"])
def test_grpc_through_the_proxy(lab, start_proxy, upstream):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from propylon.lab.grpc_echo import echo_server_stream, echo_unary

    d = str(lab.certs.dir)
    if upstream == "grpc":
        proxy = To(lab.address("grpc", "grpc"), options=PeerOptions(alpn=ALPN.H2, max_h2_streams=100))
    else:
        proxy = To(lab.address("grpc", "grpcs"), True, "grpc.propylon.test",
                   PeerOptions(alpn=ALPN.H2, max_h2_streams=100, ca_file=os.path.join(d, "ca.crt")))
    p = start_proxy(proxy, ssl=tls_context(lab))
    creds = grpc.ssl_channel_credentials(open(os.path.join(d, "ca.crt"), "rb").read())
    with grpc.secure_channel(f"localhost:{p.port}", creds) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reply, call = echo_unary(channel).with_call({"message": "hi"}, timeout=10)
        assert reply["message"] == "hi"
        assert ("x-lab-trailer", "echo") in call.trailing_metadata()
        items = list(echo_server_stream(channel)({"message": "s", "count": 5}, timeout=10))
        assert [i["index"] for i in items] == [0, 1, 2, 3, 4]
        with pytest.raises(grpc.RpcError) as err:
            echo_unary(channel)({"code": 5, "details": "nope"}, timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
