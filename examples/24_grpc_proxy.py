"""Lesson 24: gRPC proxy – TLS + h2 on 127.0.0.1:6168, h2c to the lab's gRPC server.

    python -m propylon.lab &                    # gRPC (health + echo) on 127.0.0.1:19000
    PROPYLON_LOG=info python examples/24_grpc_proxy.py
    curl -v --http2 --cacert /tmp/propylon-lab/certs/ca.crt \\
         -H 'Content-Type: application/grpc' -H 'TE: trailers' \\
         --data-binary @<(printf '\\0\\0\\0\\0\\0') \\
         https://localhost:6168/grpc.health.v1.Health/Check
    # 200, content-type: application/grpc, trailer grpc-status: 0

gRPC runs on HTTP/2 and leans on it: many calls multiplexed on one connection,
and the call's real outcome in *trailers* (``grpc-status``, ``grpc-message``)
after the body. So:

* downstream, the TLS listener must offer h2 by ALPN (``enable_h2()``): gRPC
  clients refuse a server that does not pick h2;
* upstream, ``ALPN.H2`` is forced: on this cleartext peer that means h2c with
  prior knowledge (the seed's lab used TLS on 9001; the lab's TLS port is 19001,
  see the comment below). ``max_h2_streams`` lets concurrent calls share one
  upstream connection;
* trailers are relayed as they come, so status codes reach the client intact.
"""

import logging

from propylon import ALPN, HttpPeer, PeerOptions, ProxyHttp, Server, TlsSettings, http_proxy_service

log = logging.getLogger("grpc_proxy")

GRPC_H2C = ("127.0.0.1", 19000)
# For TLS to the upstream as well: HttpPeer(("127.0.0.1", 19001), tls=True,
# sni="grpc.propylon.test", options=PeerOptions(alpn=ALPN.H2, ca_file=.../ca.crt))
CERTS = "/tmp/propylon-lab/certs"


class GrpcProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        # HTTP/2 is mandatory: a gRPC server answers HTTP/1.1 with a protocol error.
        options = PeerOptions(alpn=ALPN.H2, max_h2_streams=100)
        return HttpPeer(GRPC_H2C, tls=False, sni="grpc.propylon.test", options=options)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        ctype = upstream_request.get_header("content-type") or ""
        if ctype.startswith("application/grpc"):
            log.info("Proxying gRPC request %s", upstream_request.path)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, GrpcProxy())

    # The seed used add_tls(); that offers HTTP/1.1 only, which gRPC clients
    # reject, so h2 is switched on here.
    settings = TlsSettings.intermediate(f"{CERTS}/server.crt", f"{CERTS}/server.key")
    settings.enable_h2()
    proxy.add_tls_with_settings("127.0.0.1:6168", settings)

    log.info("gRPC Proxy running on 127.0.0.1:6168")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
