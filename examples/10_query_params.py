"""Lesson 10: query parameters – drop ``debug=...``, append ``ref=pingora``.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/10_query_params.py
    curl "http://127.0.0.1:6150/search?q=rust&debug=true&sort=asc"
    # log: Original Query: 'q=rust&debug=true&sort=asc'
    #      Rewritten URI: /search?q=rust&sort=asc&ref=pingora

The rewrite happens on the upstream copy of the request (``upstream_request_filter``
+ ``set_uri``), so the client's own request, used in logs, stays as it came.
Plain string work is enough here; parse with ``urllib.parse`` when values may be
percent-encoded.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("query_params")

BLUE = ("127.0.0.1", 18080)


class QueryModProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="blue.propylon.test")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        path = upstream_request.path
        query = upstream_request.query or ""
        log.info("Original Query: '%s'", query)

        # Internal debug switches must never reach the backend.
        params = [p for p in query.split("&") if p and not p.startswith("debug=")]
        params.append("ref=pingora")  # analytics tag: the request came through us
        new_uri = f"{path}?{'&'.join(params)}"
        log.info("Rewritten URI: %s", new_uri)

        upstream_request.set_uri(new_uri)
        upstream_request.insert_header("Host", "blue.propylon.test")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, QueryModProxy())
    proxy.add_tcp("127.0.0.1:6150")
    log.info("Query Param Proxy running on 127.0.0.1:6150")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
