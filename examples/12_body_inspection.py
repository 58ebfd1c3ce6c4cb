"""Lesson 12: body inspection – a tiny WAF that refuses uploads containing "rogue".

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/12_body_inspection.py
    curl -X POST -d "Hello World" http://127.0.0.1:6152/          # 200, Response from BLUE
    curl -X POST -d "I am a rogue agent" http://127.0.0.1:6152/   # 500, upstream never answers

``request_body_filter`` sees the upload piece by piece as it streams upstream.
A keyword may straddle two pieces, so we keep what we saw so far in the context
and search that. Buffering costs memory: past ``MAX_INSPECT`` bytes the upload
is refused with 413 rather than letting one client fill our RAM.
"""

import logging

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("body_inspection")

BLUE = ("127.0.0.1", 18080)
FORBIDDEN = b"rogue"
MAX_INSPECT = 1024 * 1024


class BodyCtx:
    """The request body seen so far."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()


class BodyInspector(ProxyHttp):
    def new_ctx(self):
        return BodyCtx()

    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="blue.propylon.test")

    async def request_body_filter(self, session, body, end_of_stream, ctx):
        if body:
            # Only the tail that could hold a split keyword needs searching again.
            start = max(0, len(ctx.buffer) - len(FORBIDDEN) + 1)
            ctx.buffer += body
            if len(ctx.buffer) > MAX_INSPECT:
                raise Error.http_status(413, "body too large to inspect")
            if FORBIDDEN in ctx.buffer[start:]:
                log.warning("Security Alert: Forbidden content 'rogue' detected in body!")
                # Raising aborts the request: the rest of the body is never sent
                # upstream. The refusal is our decision, not the upstream's fault:
                # tagged internal, the default answer is 500 rather than 502.
                raise Error.explain(ErrorType.custom("SecurityPolicyViolation"),
                                    "forbidden keyword in request body").into_in()
        return None  # forward the piece unchanged


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, BodyInspector())
    proxy.add_tcp("127.0.0.1:6152")
    log.info("Body Inspector running on 127.0.0.1:6152")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
