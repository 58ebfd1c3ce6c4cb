"""Lesson 14: HTTP/2 on both sides – h2 by ALPN on 127.0.0.1:6154, h2 to the upstream.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/14_http2_support.py
    curl -v --http2 --cacert /tmp/propylon-lab/certs/ca.crt https://localhost:6154/
    # ALPN: server accepted h2 ... Response from Advanced Upstream (HTTPS + HTTP/2)

Downstream, ``enable_h2()`` lets the TLS handshake pick h2 when the client offers
it. Upstream, ``ALPN.H2H1`` offers h2 first and falls back to HTTP/1.1 if the
origin only speaks that. The upstream's certificate is checked against the lab
CA (the seed relied on ``SSL_CERT_FILE``; here the CA file is named on the peer).
"""

import logging

from propylon import ALPN, HttpPeer, PeerOptions, ProxyHttp, Server, TlsSettings, http_proxy_service

log = logging.getLogger("http2_support")

ADVANCED = ("127.0.0.1", 18443)
ADVANCED_HOST = "advanced.propylon.test"
CERTS = "/tmp/propylon-lab/certs"


class Http2Proxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        # Prefer HTTP/2 with the upstream, fall back to HTTP/1.1.
        options = PeerOptions(alpn=ALPN.H2H1, ca_file=f"{CERTS}/ca.crt")
        log.info("Forwarding to Upstream Advanced via HTTPS (ALPN: H2/H1)")
        return HttpPeer(ADVANCED, tls=True, sni=ADVANCED_HOST, options=options)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        # The origin serves by name: Host (":authority" on h2) must match it.
        upstream_request.insert_header("Host", ADVANCED_HOST)

    async def connected_to_upstream(self, session, reused, peer, digest, ctx):
        tls = digest.tls if digest is not None else None
        # What the upstream's TLS handshake settled on (h2 if it speaks it).
        log.info("Upstream connection (reused=%s) negotiated ALPN: %s", reused, tls.alpn if tls else None)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, Http2Proxy())

    settings = TlsSettings.intermediate(f"{CERTS}/server.crt", f"{CERTS}/server.key")
    settings.enable_h2()  # without it, clients only ever get HTTP/1.1 from us
    proxy.add_tls_with_settings("127.0.0.1:6154", settings)

    log.info("HTTP/2 Proxy running on 127.0.0.1:6154")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
