"""TLS both ways: an https listener with a certificate per SNI and h2 by ALPN; an HTTPS cluster."""

from __future__ import annotations

import http.client
import json
import socket
import ssl

TLS = """
listeners:
  - name: secure
    address: "127.0.0.1:{port}"
    protocol: https
    tls:
      default: {cert: "{certs}/server.crt", key: "{certs}/server.key"}
      certificates:
        - {server_names: [advanced.propylon.test], cert: "{certs}/upstream.crt", key: "{certs}/upstream.key"}
clusters:
  blue: {backends: [{address: "{blue}"}]}
  secure-upstream:
    backends: [{address: "{advanced}"}]
    tls: {sni: advanced.propylon.test, ca_file: "{certs}/ca.crt"}
routes:
  - {match: {path: {prefix: /up}}, rewrite: {strip_prefix: /up}, proxy: {cluster: secure-upstream}}
  - {proxy: {cluster: blue}}
"""


def handshake(port: int, ca: str, server_name: str, alpn: list[str]) -> tuple[dict, str]:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert(), tls.selected_alpn_protocol()


def sans(cert: dict) -> set:
    return {v for k, v in cert["subjectAltName"] if k == "DNS"}


def test_https_listener_picks_the_certificate_by_sni_and_offers_h2(gateway_run, lab):
    certs = lab.certs_dir
    host, port = lab.address("advanced-https")
    gw = gateway_run(TLS, certs=certs, advanced=f"{host}:{port}")
    ca = str(certs / "ca.crt")
    cert, alpn = handshake(gw.port, ca, "localhost", ["h2", "http/1.1"])
    assert "dev.propylon.test" in sans(cert) and alpn == "h2"
    cert, alpn = handshake(gw.port, ca, "advanced.propylon.test", ["http/1.1"])
    assert "advanced.propylon.test" in sans(cert) and alpn == "http/1.1"
    conn = http.client.HTTPSConnection("127.0.0.1", gw.port, timeout=10,
                                       context=ssl.create_default_context(cafile=ca))
    conn.request("GET", "/", headers={"Host": "localhost"})
    assert conn.getresponse().read() == b"Response from BLUE"
    conn.request("GET", "/up/echo")
    echo = json.loads(conn.getresponse().read())
    assert echo["tls"]["sni"] == "advanced.propylon.test" and echo["path"] == "/echo"
    conn.close()


def test_cluster_with_a_client_certificate(gateway_run, lab):
    certs = lab.certs_dir
    host, port = lab.address("advanced-mtls")
    gw = gateway_run("""
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  with-cert:
    backends: [{address: "{mtls}"}]
    tls: {sni: advanced.propylon.test, ca_file: "{certs}/ca.crt",
          client_cert: {cert: "{certs}/client.crt", key: "{certs}/client.key"}}
  without-cert:
    backends: [{address: "{mtls}"}]
    tls: {sni: advanced.propylon.test, ca_file: "{certs}/ca.crt"}
routes:
  - {match: {path: {prefix: /no/}}, rewrite: {strip_prefix: /no}, proxy: {cluster: without-cert}}
  - {proxy: {cluster: with-cert}}
""", certs=certs, mtls=f"{host}:{port}")
    status, _, body = gw.request(path="/")
    assert (status, body) == (200, b"Response from mTLS Protected Upstream. Hello, Authenticated Client!")
    status, _, body = gw.request(path="/no/")  # the lab answers as nginx does without a certificate
    assert status == 400 and b"No required SSL certificate was sent" in body
