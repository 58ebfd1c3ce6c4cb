"""Lesson 35: hot-swap API – POST a new upstream to 127.0.0.1:9090, traffic on 6179 follows.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/35_dynamic_reconfiguration.py
    while true; do curl -s http://127.0.0.1:6179/; echo; sleep 1; done   # BLUE
    curl -d "127.0.0.1:18081" http://127.0.0.1:9090/                     # OK, then GREEN
    curl -d "not-an-address" http://127.0.0.1:9090/                      # 400
    curl http://127.0.0.1:9090/                                          # the current set

Two listening services share one ``InMemoryDiscovery``: the proxy's load balancer
reads it (polling every 500 ms), and the admin service, itself a small
``ProxyHttp`` that answers every request in ``request_filter`` and never goes
upstream, replaces its contents. Both run on the same event loop, so the shared
object needs no lock. The admin also asks the balancer to update at once, so a
swap takes effect before its ``200 OK`` is sent.
"""

import logging

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import Backends, InMemoryDiscovery, LoadBalancer, RoundRobin

log = logging.getLogger("hot_swap")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")
MAX_BODY = 4096  # an address is short; refuse anything bigger
TEXT = {"Content-Type": "text/plain"}


class LB(ProxyHttp):
    """Round robin over the backends the admin API set last."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def upstream_peer(self, session, ctx):
        upstream = self.lb.select(b"", 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, "Empty upstream pool")
        log.info("Routed to upstream: %r", upstream)
        return HttpPeer(upstream, tls=False, sni="hot-swap.cluster")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "hot-swap-cluster")


class AdminApi(ProxyHttp):
    """``POST /`` with an address as the body swaps the upstream; ``GET /`` lists it."""

    def __init__(self, discovery: InMemoryDiscovery, lb: LoadBalancer) -> None:
        self.discovery = discovery
        self.lb = lb

    async def request_filter(self, session, ctx):
        method = session.req_header.method
        if method == "GET":
            current = "\n".join(b.addr for b in sorted(self.discovery.get()))
            await session.write_response(200, current + "\n", TEXT)
        elif method == "POST":
            await self._swap(session)
        else:
            await session.write_response(405, "Use GET or POST\n", {**TEXT, "Allow": "GET, POST"})
        return True  # answered here: nothing goes upstream

    async def _swap(self, session) -> None:
        body = b""
        while (chunk := await session.read_request_body()) is not None:
            body += chunk
            if len(body) > MAX_BODY:
                await session.respond_error_with_body(413, "Body too large\n")
                return
        addr = body.decode("utf-8", "replace").strip()
        try:
            self.discovery.set([addr])
        except ValueError as e:
            log.error("Admin: Failed to parse address: %r", addr)
            await session.write_response(400, f"Invalid address: {e}\n", TEXT)
            return
        await self.lb.update()  # apply now rather than at the next 500 ms poll
        log.info("Admin: Hot-swapped upstream to %s", addr)
        await session.write_response(200, "OK", TEXT)

    async def upstream_peer(self, session, ctx):
        raise Error.http_status(404, "the admin API never proxies")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    discovery = InMemoryDiscovery(["127.0.0.1:18080"])  # start on blue
    upstreams = LoadBalancer.from_backends(Backends(discovery), selection=RoundRobin)
    upstreams.update_frequency = 0.5
    lb_service = background_service("lb_updater", upstreams)

    admin = http_proxy_service(server.configuration, AdminApi(discovery, upstreams))
    admin.add_tcp("127.0.0.1:9090")
    proxy = http_proxy_service(server.configuration, LB(upstreams))
    proxy.add_tcp("127.0.0.1:6179")
    log.info("Hot-Swap Proxy running on 127.0.0.1:6179")
    log.info("Admin API running on 127.0.0.1:9090")

    server.add_service(lb_service)
    server.add_service(admin)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
