"""Lesson 21: mutual TLS – present a client certificate to the upstream for /auth only.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/21_mutual_tls.py
    curl -v http://127.0.0.1:6165/anon   # 400, "No required SSL certificate was sent"
    curl -v http://127.0.0.1:6165/auth   # 200, "Response from mTLS Protected Upstream. ..."

The lab's mTLS upstream (127.0.0.1:18444) wants a client certificate signed by the
lab CA. ``HttpPeer.client_cert_key`` carries one; leaving it None connects
anonymously. The certificate is checked once at start-up and the same ``CertKey``
is shared by every request (it is also part of the connection-pool key, so
anonymous and authenticated connections are never mixed up).
"""

import logging
import os
import ssl
import sys

from propylon import CertKey, HttpPeer, PeerOptions, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("mutual_tls")

MTLS_UPSTREAM = ("127.0.0.1", 18444)
SNI = "advanced.propylon.test"
CERTS = "/tmp/propylon-lab/certs"


def load_client_cert(cert_file: str, key_file: str) -> CertKey:
    """Check at start-up that the pair loads, so a bad file fails now, not per request."""
    for path in (cert_file, key_file):
        if not os.path.exists(path):
            log.error("Client keys missing at %s. Start the lab once: python -m propylon.lab", path)
            sys.exit(1)
    try:
        ssl.create_default_context().load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        log.error("Failed to load the client certificate %s: %s", cert_file, exc)
        sys.exit(1)
    return CertKey(cert_file, key_file)


class MtlsProxy(ProxyHttp):
    def __init__(self, client_cert: CertKey) -> None:
        self.client_cert = client_cert

    async def upstream_peer(self, session, ctx):
        path = session.req_header.path
        peer = HttpPeer(MTLS_UPSTREAM, tls=True, sni=SNI,
                        options=PeerOptions(ca_file=f"{CERTS}/ca.crt"))
        if path == "/auth":
            log.info("Attaching Client Certificate for /auth request...")
            peer.client_cert_key = self.client_cert
        else:
            log.info("Connecting anonymously (no cert) for %s...", path)
        return peer


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    client_cert = load_client_cert(f"{CERTS}/client.crt", f"{CERTS}/client.key")
    proxy = http_proxy_service(server.configuration, MtlsProxy(client_cert))
    proxy.add_tcp("127.0.0.1:6165")
    log.info("mTLS Proxy running on 127.0.0.1:6165")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
