"""Lesson 6: the simple forwarder – every request on 127.0.0.1:6146 goes to blue.

    python -m propylon.lab &                    # the lab upstreams
    PROPYLON_LOG=info python examples/06_simple_forwarder.py
    curl -v http://127.0.0.1:6146/              # 200, "Response from BLUE"

Only ``upstream_peer`` is required; ``upstream_request_filter`` rewrites Host
because many origins route (or refuse) requests by it.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("simple_forwarder")

BLUE = ("127.0.0.1", 18080)


class SimpleProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        log.info("Forwarding request to Upstream Blue (%s:%d)", *BLUE)
        return HttpPeer(BLUE, tls=False, sni="blue.propylon.test")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "blue.propylon.test")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, SimpleProxy())
    proxy.add_tcp("127.0.0.1:6146")
    log.info("Simple Proxy running on 127.0.0.1:6146 -> Forwarding to Upstream Blue")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
