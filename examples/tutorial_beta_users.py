"""Tutorial: tell beta users apart, count them, and send them to their own upstream.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/tutorial_beta_users.py
    curl http://127.0.0.1:6190/                          # Response from BLUE  (log: I'm a user #1)
    curl http://127.0.0.1:6190/ -H "beta-flag: 1"        # Response from GREEN (log: I'm a beta user #1)

A request carrying a ``beta-flag`` header is a beta user's. ``request_filter``
records that in the per-request context; ``upstream_peer`` reads it, bumps the
counters and picks the upstream: beta users go to green, everyone else to blue.

Two counters: every request (module level, like a global) and beta requests
(on the proxy object). Each worker process has one event loop and hooks never
run in parallel within it, so plain integers are safe; with ``threads: N``
(N processes) each process counts its own share.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("beta_users")

REGULAR = (("127.0.0.1", 18080), "blue.propylon.test")
BETA = (("127.0.0.1", 18081), "green.propylon.test")

request_count = 0  # every request this process has routed


def is_beta_user(req) -> bool:
    """Deliberately simple: the header's presence is enough."""
    return "beta-flag" in req.headers


class BetaCtx:
    __slots__ = ("beta_user",)

    def __init__(self) -> None:
        self.beta_user = False


class BetaProxy(ProxyHttp):
    def __init__(self) -> None:
        self.beta_count = 0

    def new_ctx(self):
        return BetaCtx()

    async def request_filter(self, session, ctx):
        ctx.beta_user = is_beta_user(session.req_header)
        return False  # keep going

    async def upstream_peer(self, session, ctx):
        global request_count
        request_count += 1
        if ctx.beta_user:
            self.beta_count += 1
            log.info("I'm a beta user #%d", self.beta_count)
            addr, host = BETA
        else:
            log.info("I'm a user #%d", request_count)
            addr, host = REGULAR
        return HttpPeer(addr, tls=False, sni=host)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", (BETA if ctx.beta_user else REGULAR)[1])


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, BetaProxy())
    proxy.add_tcp("127.0.0.1:6190")
    log.info("Beta-user proxy running on 127.0.0.1:6190")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
