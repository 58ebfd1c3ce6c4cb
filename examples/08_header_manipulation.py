"""Lesson 8: header manipulation – tag and scrub the request, stamp the response.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/08_header_manipulation.py
    curl -v http://127.0.0.1:6148/          # "Response from GREEN", < X-Edited-By: Propylon
    curl http://127.0.0.1:6148/echo         # what green received: no User-Agent

Two hooks change headers on their way through:

* ``upstream_request_filter`` edits the copy of the request that goes upstream
  (after the peer is chosen): a tag for the backend, the client's User-Agent
  removed so the backend cannot fingerprint it;
* ``response_filter`` edits the response head before it goes to the client.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("header_manipulation")

GREEN = ("127.0.0.1", 18081)


class HeaderModProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        return HttpPeer(GREEN, tls=False, sni="green.propylon.test")

    # Client -> proxy -> upstream
    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "green.propylon.test")
        # Lets the backend know the request came through the gateway.
        upstream_request.insert_header("X-Propylon-Proxy", "true")
        # Anonymise the client.
        upstream_request.remove_header("User-Agent")
        log.info("Request headers modified: Added X-Propylon-Proxy, Removed User-Agent.")

    # Upstream -> proxy -> client
    async def response_filter(self, session, upstream_response, ctx):
        upstream_response.insert_header("X-Edited-By", "Propylon")
        log.info("Response headers modified: Added X-Edited-By")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, HeaderModProxy())
    proxy.add_tcp("127.0.0.1:6148")
    log.info("Header Manipulation Proxy running on 127.0.0.1:6148 -> Forwarding to Upstream Green")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
