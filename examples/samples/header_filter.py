"""Sample: the two header interception points, on the way in and on the way out.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/samples/header_filter.py
    curl -i http://127.0.0.1:6188 -H "Host: advanced.propylon.test"

* ``upstream_request_filter`` changes the request the upstream receives: it
  gains ``X-Forwarded-Proto`` and ``X-Proxy-Sample`` and loses any ``Cookie``
  (the upstream has no use for the client's session);
* ``response_filter`` changes what the client receives: ``X-Proxied-By`` is added
  and ``X-Lab-Member`` (an internal detail of the upstream) is removed.
"""

import logging

from propylon import HttpPeer, PeerOptions, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("header_filter")

UPSTREAM = ("127.0.0.1", 18443)
SNI = "advanced.propylon.test"
LAB_CA = "/tmp/propylon-lab/certs/ca.crt"


class HeaderFilter(ProxyHttp):
    def __init__(self) -> None:
        self.options = PeerOptions(ca_file=LAB_CA)

    async def upstream_peer(self, session, ctx):
        return HttpPeer(UPSTREAM, tls=True, sni=SNI, options=self.options)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("X-Forwarded-Proto", "http")
        upstream_request.insert_header("X-Proxy-Sample", "header_filter")
        upstream_request.remove_header("Cookie")
        log.info("upstream_request_filter: %s %s", upstream_request.method, upstream_request.uri)

    async def response_filter(self, session, upstream_response, ctx):
        upstream_response.insert_header("X-Proxied-By", "Propylon")
        upstream_response.remove_header("X-Lab-Member")
        log.info("response_filter: status %d", upstream_response.status)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, HeaderFilter())
    proxy.add_tcp("127.0.0.1:6188")
    log.info("Header filter sample running on 127.0.0.1:6188 -> https://%s", SNI)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
