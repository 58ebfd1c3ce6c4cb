"""Lesson 20: SNI routing – one upstream address, a TLS name chosen by path.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/20_sni_routing.py
    curl -v http://127.0.0.1:6164/v1/test   # 200, upstream saw SNI v1.api.propylon.test
    curl -v http://127.0.0.1:6164/v2/test   # 200, upstream saw SNI v2.api.propylon.test

SNI (Server Name Indication) is the name a TLS client asks for in its ClientHello;
a server hosting many names picks its certificate and site by it. The lab's
advanced upstream (127.0.0.1:18443) holds a certificate for ``*.api.propylon.test``,
so both names verify against the lab CA. It reports the SNI it saw in the
``X-Lab-SNI`` response header.

``request_filter`` decides, the context carries the decision to ``upstream_peer``
(where the TLS connection is made) and ``upstream_request_filter`` keeps the Host
header in step with the SNI.
"""

import logging

from propylon import HttpPeer, PeerOptions, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("sni_routing")

ADVANCED = ("127.0.0.1", 18443)
LAB_CA = "/tmp/propylon-lab/certs/ca.crt"


class SniCtx:
    """Per-request state: the host name picked by request_filter."""

    __slots__ = ("target_host",)

    def __init__(self) -> None:
        self.target_host = ""


class SniRouter(ProxyHttp):
    def new_ctx(self):
        return SniCtx()

    async def request_filter(self, session, ctx):
        path = session.req_header.path
        ctx.target_host = "v1.api.propylon.test" if path.startswith("/v1") else "v2.api.propylon.test"
        return False

    async def upstream_peer(self, session, ctx):
        sni = ctx.target_host
        log.info("Connecting to IP: %s:%d with SNI: %s", *ADVANCED, sni)
        # Certificate and host name are verified (the defaults), against the lab CA.
        return HttpPeer(ADVANCED, tls=True, sni=sni, options=PeerOptions(ca_file=LAB_CA))

    async def upstream_request_filter(self, session, upstream_request, ctx):
        # Layer 7 name = layer 4 name, or virtual hosts may disagree.
        upstream_request.insert_header("Host", ctx.target_host)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, SniRouter())
    proxy.add_tcp("127.0.0.1:6164")
    log.info("SNI Routing Proxy running on 127.0.0.1:6164")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
