"""Lesson 40: request size limit – bodies over 100 bytes get 413, checked twice.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/40_request_size_limit.py
    curl -i -d tiny http://127.0.0.1:6184/                  # 200
    payload=$(printf 'a%.0s' $(seq 150))
    curl -i -d "$payload" http://127.0.0.1:6184/            # 413 at once (Content-Length)
    curl -i -H "Transfer-Encoding: chunked" -d "$payload" http://127.0.0.1:6184/
                                                            # 413 after the upload (counted)

* Fast path, ``request_filter``: a declared ``Content-Length`` over the limit is
  refused before any body byte is read or anything goes upstream.
* Slow path, ``request_body_filter``: a chunked upload declares nothing (and a
  client could send more than it declared), so each piece is counted as it streams
  through. Going over raises ``Error.http_status(413)``; the engine stops sending to
  the upstream, drops that connection, and the default ``fail_to_proxy`` answers the
  client with the error's status, 413. The upstream never receives a complete
  oversized request.

:class:`~propylon.security.BodySizeLimit` does the counting, one per request.
"""

import logging

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.security import BodySizeLimit

log = logging.getLogger("request_size_limit")

BLUE = ("127.0.0.1", 18080)
MAX_BODY_SIZE = 100  # bytes, tiny to make testing easy
TOO_LARGE = ErrorType.http_status(413)


class SizeLimitProxy(ProxyHttp):
    def new_ctx(self):
        return BodySizeLimit(MAX_BODY_SIZE)

    async def request_filter(self, session, ctx):
        declared = session.req_header.headers.get("content-length")
        if not ctx.check_content_length(declared):
            log.warning("Rejecting request by Header: Content-Length: %s > %d", declared, MAX_BODY_SIZE)
            await session.respond_error(413)
            return True
        return False

    async def request_body_filter(self, session, body, end_of_stream, ctx):
        if body:
            try:
                ctx.add(len(body))
            except Error:
                log.warning("Rejecting request by Stream: Accumulated %d bytes > %d",
                            ctx.received, MAX_BODY_SIZE)
                raise
        return None  # forward the piece unchanged

    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="size-limit.cluster")

    def suppress_error_log(self, session, ctx, error):
        # Our own refusal, already logged above: not worth a "Fail to proxy" error line.
        return error.etype == TOO_LARGE


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, SizeLimitProxy())
    proxy.add_tcp("127.0.0.1:6184")
    log.info("Request Size Limiter running on 127.0.0.1:6184")
    log.info("Max Body Size: %d bytes", MAX_BODY_SIZE)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
