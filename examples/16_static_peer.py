"""Lesson 16: a static peer – the upstream's address is fixed in the program.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/16_static_peer.py
    curl http://127.0.0.1:6160/             # Response from BLUE
    # log: Connecting to static peer: ('127.0.0.1', 18080)

Fixed addresses suit local sidecars, legacy hosts and setups where a DNS lookup
per request is not wanted. An ``HttpPeer`` is three things: the address, whether
to speak TLS, and the SNI, which names the server even over plain HTTP.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("static_peer")


class StaticPeerProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        addr = ("127.0.0.1", 18080)  # hard-coded here; could come from a config file
        use_tls = False              # blue speaks plain HTTP
        sni = "blue.propylon.test"
        log.info("Connecting to static peer: %r", addr)
        return HttpPeer(addr, use_tls, sni)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, StaticPeerProxy())
    proxy.add_tcp("127.0.0.1:6160")
    log.info("Static Peer Proxy running on 127.0.0.1:6160")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
