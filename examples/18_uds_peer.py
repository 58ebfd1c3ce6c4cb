"""Lesson 18: a Unix domain socket peer – TCP in front, a local socket file behind.

    python -m propylon.lab &                # serves HTTP on /tmp/propylon-lab/upstream.sock
    PROPYLON_LOG=info python examples/18_uds_peer.py
    curl http://127.0.0.1:6162/             # Response from UDS

Processes on one machine can skip the TCP/IP stack entirely: ``HttpPeer.new_uds``
takes a socket path instead of an address. HTTP still wants a Host, so the peer
keeps an SNI/Host name even though no network name is involved. The seed ran
its own little socket server in a thread; the lab already provides one.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("uds_peer")

SOCKET_PATH = "/tmp/propylon-lab/upstream.sock"


class UdsProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        log.info("Forwarding to UDS: %s", SOCKET_PATH)
        # TLS over a local socket is rare: the kernel is the only one in between.
        return HttpPeer.new_uds(SOCKET_PATH, tls=False, sni="uds.propylon.test")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "uds.propylon.test")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, UdsProxy())
    proxy.add_tcp("127.0.0.1:6162")
    log.info("UDS Proxy running on 127.0.0.1:6162")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
