"""Lesson 9: path routing – /blue and /green go to different upstreams, the rest is 404.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/09_path_routing.py
    curl http://127.0.0.1:6149/blue         # Response from BLUE
    curl http://127.0.0.1:6149/green        # Response from GREEN
    curl -i http://127.0.0.1:6149/invalid   # 404

``request_filter`` runs first and makes the decision; the context (``ctx``) carries
it to ``upstream_peer`` and ``upstream_request_filter``. Returning True from
``request_filter`` means "already answered": nothing goes upstream.
"""

import enum
import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("path_routing")


class Target(enum.Enum):
    BLUE = (("127.0.0.1", 18080), "blue.propylon.test")
    GREEN = (("127.0.0.1", 18081), "green.propylon.test")

    @property
    def addr(self):
        return self.value[0]

    @property
    def host(self):
        return self.value[1]


class RouteCtx:
    """Per-request state: the routing decision, set by request_filter."""

    __slots__ = ("target",)

    def __init__(self) -> None:
        self.target = None


class PathRouter(ProxyHttp):
    def new_ctx(self):
        return RouteCtx()

    async def request_filter(self, session, ctx):
        path = session.req_header.path
        if path.startswith("/blue"):
            ctx.target = Target.BLUE
        elif path.startswith("/green"):
            ctx.target = Target.GREEN
        else:
            await session.respond_error(404)
            return True  # handled: stop here
        return False

    async def upstream_peer(self, session, ctx):
        target = ctx.target
        log.info("Routing request to %s based on path", target.name)
        return HttpPeer(target.addr, tls=False, sni=target.host)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", ctx.target.host)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, PathRouter())
    proxy.add_tcp("127.0.0.1:6149")
    log.info("Path Router running on 127.0.0.1:6149")
    log.info("Try: curl http://127.0.0.1:6149/blue or /green")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
