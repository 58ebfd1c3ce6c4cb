"""Lesson 11: response modification – hide, add and copy response headers.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/11_response_modification.py
    curl -v http://127.0.0.1:6151/
    # < X-App-Name: http-echo              (kept)
    # no X-App-Version                     (removed)
    # < X-Content-Type-Options: nosniff    (added)
    # < X-Legacy-Date: <same as Date>      (copied)

``response_filter`` runs once the upstream's response head has arrived and before
any body goes to the client, so changing headers here costs no buffering.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("response_modification")

BLUE = ("127.0.0.1", 18080)


class ResponseModProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="blue.propylon.test")

    async def response_filter(self, session, upstream_response, ctx):
        # Backend versions help attackers pick exploits.
        upstream_response.remove_header("X-App-Version")
        # Stop browsers from guessing a different content type.
        upstream_response.insert_header("X-Content-Type-Options", "nosniff")
        # An old client that expects the date under another name.
        date = upstream_response.headers.get_bytes("Date")
        if date is not None:
            upstream_response.insert_header("X-Legacy-Date", date)
        log.info("Response filtered. Stripped Version. Added Security Headers.")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, ResponseModProxy())
    proxy.add_tcp("127.0.0.1:6151")
    log.info("Response Mod Proxy running on 127.0.0.1:6151")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
