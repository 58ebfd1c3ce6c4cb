"""Lesson 22: reaching an HTTPS upstream through a forward proxy (HTTP CONNECT).

    python -m propylon.lab &                # forward proxy on 127.0.0.1:13128
    PROPYLON_LOG=info python examples/22_proxy_connect.py
    curl -v http://127.0.0.1:6166/          # Response from Advanced Upstream (HTTPS + HTTP/1.1)

Where servers may not open connections to the outside themselves, every outbound
connection goes through a forward proxy: we ask it to ``CONNECT host:port``,
it answers ``200`` and from then on relays raw bytes both ways. TLS then runs
*inside* that tunnel, end to end with the real upstream.

``PeerOptions.custom_l4`` replaces the dialling step: ``TunnelConnector.connect``
opens the tunnel and returns the connected socket; Propylon does the TLS
handshake over it with the peer's SNI and CA. The peer's address is the
forward proxy (where the socket really goes, which also keys the connection
pool); the SNI and the Host header name the real destination.
"""

import asyncio
import logging
import socket

from propylon import Error, ErrorType, HttpPeer, PeerOptions, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("proxy_connect")

FORWARD_PROXY = ("127.0.0.1", 13128)
UPSTREAM_HOST = "advanced.propylon.test"
UPSTREAM_PORT = 18443
LAB_CA = "/tmp/propylon-lab/certs/ca.crt"


class TunnelConnector:
    """Dials the forward proxy and opens a CONNECT tunnel to ``host:port``."""

    def __init__(self, proxy_addr, host: str, port: int, timeout: float = 2.0) -> None:
        self.proxy_addr = proxy_addr
        self.host = host
        self.port = port
        self.timeout = timeout

    async def connect(self, peer) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(self._open(sock), self.timeout)
        except asyncio.TimeoutError:
            sock.close()
            raise Error.explain(ErrorType.CONNECT_TIMEDOUT,
                                f"CONNECT via {self.proxy_addr} took over {self.timeout}s") from None
        except BaseException:
            sock.close()
            raise
        log.info("Connector: Tunnel established! Handing socket to Propylon.")
        return sock

    async def _open(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        log.info("Connector: Dialing Proxy at %s:%d...", *self.proxy_addr)
        await loop.sock_connect(sock, self.proxy_addr)

        target = f"{self.host}:{self.port}"
        log.info("Connector: Sending CONNECT request for %s", target)
        await loop.sock_sendall(sock, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())

        # Read the proxy's answer head. Nothing follows it until we speak TLS,
        # so reading in pieces cannot swallow tunnel bytes.
        head = b""
        while b"\r\n\r\n" not in head:
            piece = await loop.sock_recv(sock, 4096)
            if not piece or len(head) > 16384:
                raise Error.explain(ErrorType.CONNECT_PROXY_FAILURE, "proxy closed during CONNECT")
            head += piece
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split()
        if len(parts) < 2 or parts[1] != "200":
            raise Error.explain(ErrorType.CONNECT_PROXY_FAILURE, f"Proxy refused tunnel: {status_line}")


class TunnelProxy(ProxyHttp):
    def __init__(self) -> None:
        # One connector for all requests: pooled connections are keyed by it.
        self.connector = TunnelConnector(FORWARD_PROXY, UPSTREAM_HOST, UPSTREAM_PORT)

    async def upstream_peer(self, session, ctx):
        options = PeerOptions(ca_file=LAB_CA, custom_l4=self.connector)
        return HttpPeer(FORWARD_PROXY, tls=True, sni=UPSTREAM_HOST, options=options)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        # Inside the tunnel the request is for the real destination.
        upstream_request.insert_header("Host", UPSTREAM_HOST)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, TunnelProxy())
    proxy.add_tcp("127.0.0.1:6166")
    log.info("Propylon Tunnel Service running on 127.0.0.1:6166")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
