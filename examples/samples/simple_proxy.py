"""Sample: the simplest proxy – everything on 6188 goes to one HTTPS upstream.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/samples/simple_proxy.py
    curl -v http://127.0.0.1:6188 -H "Host: advanced.propylon.test"

The client speaks plain HTTP to us; we speak TLS to the upstream, checking its
certificate against the lab's CA and sending the SNI it expects. The client's
Host header is passed through unchanged.
"""

import logging

from propylon import HttpPeer, PeerOptions, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("simple_proxy")

UPSTREAM = ("127.0.0.1", 18443)
SNI = "advanced.propylon.test"
LAB_CA = "/tmp/propylon-lab/certs/ca.crt"


class SimpleProxy(ProxyHttp):
    def __init__(self) -> None:
        # The same options object for every request: built once, not per request.
        self.options = PeerOptions(ca_file=LAB_CA)

    async def upstream_peer(self, session, ctx):
        log.info("Proxying %s %s to %s:%d", session.req_header.method, session.req_header.uri, *UPSTREAM)
        return HttpPeer(UPSTREAM, tls=True, sni=SNI, options=self.options)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, SimpleProxy())
    proxy.add_tcp("127.0.0.1:6188")
    log.info("Simple proxy running on 127.0.0.1:6188 -> https://%s (%s:%d)", SNI, *UPSTREAM)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
