"""Lesson 7: TLS termination – HTTPS on 127.0.0.1:6147, plain HTTP to blue.

    python -m propylon.lab &                    # upstreams and /tmp/propylon-lab/certs
    PROPYLON_LOG=info python examples/07_tls_termination.py
    curl -v --cacert /tmp/propylon-lab/certs/ca.crt https://localhost:6147/
    curl -v --cacert /tmp/propylon-lab/certs/ca.crt \\
         --resolve dev.propylon.test:6147:127.0.0.1 https://dev.propylon.test:6147/

The client speaks HTTPS to us; we decrypt and speak plain HTTP to blue
(``tls=False`` on the peer), sparing the backend the crypto work. The lab's
``server.crt`` is valid for localhost, 127.0.0.1 and dev.propylon.test.
"""

import logging
import os
import sys

from propylon import HttpPeer, ProxyHttp, Server, TlsSettings, http_proxy_service

log = logging.getLogger("tls_termination")

BLUE = ("127.0.0.1", 18080)
CERT = "/tmp/propylon-lab/certs/server.crt"
KEY = "/tmp/propylon-lab/certs/server.key"


class TlsProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        log.info("Forwarding HTTPS request to Upstream Blue (%s:%d)", *BLUE)
        # tls=False: TLS ends here, the hop to blue is plain HTTP.
        return HttpPeer(BLUE, tls=False, sni="blue.propylon.test")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, TlsProxy())

    if not (os.path.exists(CERT) and os.path.exists(KEY)):
        log.error("Certificates not found at %s! Start the lab once: python -m propylon.lab", CERT)
        sys.exit(1)

    # Mozilla's "intermediate" profile (TLS 1.2+, forward-secret ciphers), and
    # h2 offered by ALPN next to http/1.1.
    settings = TlsSettings.intermediate(CERT, KEY)
    settings.enable_h2()
    proxy.add_tls_with_settings("127.0.0.1:6147", settings)

    log.info("HTTPS Proxy running on 127.0.0.1:6147 -> Forwarding to Upstream Blue")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
