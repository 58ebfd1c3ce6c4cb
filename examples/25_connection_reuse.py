"""Lesson 25: connection reuse – prove that the second request rides a pooled connection.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/25_connection_reuse.py
    curl http://127.0.0.1:6169/ http://127.0.0.1:6169/
    # log: Request Complete. Reused Connection: false
    #      Request Complete. Reused Connection: true

After a response is fully read, the upstream connection goes back to a pool
(one per worker process) instead of being closed; the next request to the same
peer takes it and skips the TCP (and TLS) handshake. ``idle_timeout`` is how
long it may wait there unused. ``connected_to_upstream`` is told whether the
connection was reused; the context carries that to ``logging`` at the end.
"""

import logging

from propylon import HttpPeer, PeerOptions, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("connection_reuse")

BLUE = ("127.0.0.1", 18080)


class ReusingCtx:
    __slots__ = ("is_reused",)

    def __init__(self) -> None:
        self.is_reused = False


class ReusingProxy(ProxyHttp):
    def new_ctx(self):
        return ReusingCtx()

    async def upstream_peer(self, session, ctx):
        # Idle connections stay pooled for 30 s; with 0 nothing would ever be reused.
        options = PeerOptions(idle_timeout=30, connection_timeout=1)
        return HttpPeer(BLUE, tls=False, sni="blue.propylon.test", options=options)

    async def connected_to_upstream(self, session, reused, peer, digest, ctx):
        ctx.is_reused = reused

    async def logging(self, session, e, ctx):
        log.info("Request Complete. Reused Connection: %s", "true" if ctx.is_reused else "false")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, ReusingProxy())
    proxy.add_tcp("127.0.0.1:6169")
    log.info("Connection Reuse Demo running on 127.0.0.1:6169")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
