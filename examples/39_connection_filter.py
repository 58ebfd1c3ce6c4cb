"""Lesson 39: IP filtering – 127.0.0.2 is refused, everyone else is proxied to blue.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/39_connection_filter.py
    curl -i http://127.0.0.1:6183/                          # 200, Response from BLUE
    curl -i --interface 127.0.0.2 http://127.0.0.1:6183/    # 403 Forbidden, with a body

    CONNECTION_FILTER=1 PROPYLON_LOG=info python examples/39_connection_filter.py
    curl -i --interface 127.0.0.2 http://127.0.0.1:6183/    # connection reset, no HTTP at all

Two places to refuse a client:

* ``request_filter`` (layer 7): the request has been read, so we can log what was
  asked and answer politely with a 403 page.
* a connection filter (layer 4, with ``CONNECTION_FILTER=1``): the listening
  service asks it on accept, before a byte is read, and resets the connection. Cheapest,
  but the client learns nothing.

The block list is an :class:`~propylon.security.IpAccessList`, which also takes CIDR
ranges (``"10.6.0.0/16"``).
"""

import logging
import os

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.security import IpAccessList

log = logging.getLogger("connection_filter")

BLUE = ("127.0.0.1", 18080)
BAD_ACTOR = "127.0.0.2"
FIREWALL = IpAccessList(deny=[BAD_ACTOR])


class FirewallProxy(ProxyHttp):
    async def request_filter(self, session, ctx):
        client_ip = session.client_ip
        if client_ip is None:
            log.warning("Unknown client address, allowing...")
            return False
        if not FIREWALL.allows(client_ip):
            log.warning("Access Denied for IP: %s (%s %s)", client_ip,
                        session.req_header.method, session.req_header.path)
            await session.write_response(403, "Forbidden: your address is blocked\n",
                                         {"Content-Type": "text/plain"})
            return True
        return False

    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="firewall.cluster")


def refuse_bad_actors(peer_addr) -> bool:
    """Connection filter: True lets the TCP connection in, False resets it."""
    if isinstance(peer_addr, tuple) and not FIREWALL.allows(peer_addr[0]):
        log.warning("Connection refused for IP: %s", peer_addr[0])
        return False
    return True


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, FirewallProxy())
    proxy.add_tcp("127.0.0.1:6183")
    if os.environ.get("CONNECTION_FILTER", "") not in ("", "0"):
        proxy.set_connection_filter(refuse_bad_actors)
        log.info("Connection filter on: %s is refused before any HTTP", BAD_ACTOR)
    log.info("Firewall Proxy running on 127.0.0.1:6183")
    log.info("Blocking Bad Actor: %s", BAD_ACTOR)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
