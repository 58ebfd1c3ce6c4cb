"""Lesson 15: h2c – HTTP/1.1 in on 127.0.0.1:6155, cleartext HTTP/2 out.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/15_h2c_support.py
    curl -v http://127.0.0.1:6155/
    # HTTP/1.1 200 OK ... Response from Advanced Upstream (H2C - Cleartext HTTP/2)

Without TLS there is no ALPN to negotiate with, so ``ALPN.H2`` on a cleartext
peer means "prior knowledge": the connection starts with the HTTP/2 preface at
once. There is no fallback; an upstream that does not speak h2c fails the request.
"""

import logging

from propylon import ALPN, HttpPeer, PeerOptions, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("h2c_support")

ADVANCED_H2C = ("127.0.0.1", 18082)
ADVANCED_HOST = "advanced.propylon.test"


class H2cProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        log.info("Forwarding to Upstream Advanced via H2C (Port %d)", ADVANCED_H2C[1])
        # tls=False + ALPN.H2: speak HTTP/2 frames right away.
        return HttpPeer(ADVANCED_H2C, tls=False, sni=ADVANCED_HOST,
                        options=PeerOptions(alpn=ALPN.H2))

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", ADVANCED_HOST)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, H2cProxy())
    # Plain HTTP/1.1 at the front, for simplicity.
    proxy.add_tcp("127.0.0.1:6155")
    log.info("Proxy running on 127.0.0.1:6155 (HTTP/1.1) -> Forwarding to Upstream (H2C)")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
