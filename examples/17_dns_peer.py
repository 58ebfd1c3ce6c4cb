"""Lesson 17: a DNS peer – resolve the upstream's name per request, without blocking.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/17_dns_peer.py
    curl http://127.0.0.1:6161/             # Response from BLUE
    # log: Resolving host: localhost:18080
    #      Resolved localhost -> 127.0.0.1:18080

``socket.getaddrinfo`` blocks; called from a hook it would stall every request
this process serves. ``loop.getaddrinfo`` runs the lookup in a thread and lets
the loop go on. (A bare ``HttpPeer(("localhost", 18080))`` would also be
resolved without blocking, at connect time; here we do it ourselves to choose
the address and to report lookup failures our own way.)
"""

import asyncio
import logging
import socket

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("dns_peer")

HOSTNAME = "localhost"  # the lab's name for blue's host; never a public name here
PORT = 18080


class DnsPeerProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        log.info("Resolving host: %s:%d", HOSTNAME, PORT)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(HOSTNAME, PORT, family=socket.AF_INET,
                                           type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise Error.because(ErrorType.custom("DNSResolutionFailed"),
                                f"cannot resolve {HOSTNAME}", e) from None
        if not infos:
            log.error("DNS lookup returned no records for %s", HOSTNAME)
            raise Error.new(ErrorType.custom("DNSNoRecords"))
        # A name may have several addresses; take the first.
        ip, port = infos[0][4][:2]
        log.info("Resolved %s -> %s:%d", HOSTNAME, ip, port)
        return HttpPeer((ip, port), tls=False, sni="blue.propylon.test")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "blue.propylon.test")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, DnsPeerProxy())
    proxy.add_tcp("127.0.0.1:6161")
    log.info("DNS Peer Proxy running on 127.0.0.1:6161")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
