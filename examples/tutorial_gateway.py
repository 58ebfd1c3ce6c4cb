"""Tutorial: a small gateway – login check, path routing, response rewrite, metrics.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/tutorial_gateway.py
    curl -i http://127.0.0.1:6191/login                              # 403
    curl -i -H "Authorization: password" http://127.0.0.1:6191/login # forwarded (blue)
    curl -i http://127.0.0.1:6191/family                             # green
    curl http://127.0.0.1:6192/metrics                               # req_counter_total ...

* ``request_filter``: ``/login`` without the right ``Authorization`` is refused
  with 403 before anything goes upstream (replace ``check_login`` with real
  token or credential checks);
* ``upstream_peer``: ``/family`` goes to green, everything else to blue;
* ``response_filter``: our own ``Server`` header, and ``alt-svc`` removed (it would
  invite clients to bypass the gateway over another protocol);
* ``logging``: one line per request and a Prometheus counter, served by a second
  service on its own port. ``prometheus_client`` names a counter ``req_counter``
  ``req_counter_total`` in the exposition.
"""

import logging

from prometheus_client import Counter

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service, prometheus_http_service

log = logging.getLogger("gateway")

BLUE = (("127.0.0.1", 18080), "blue.propylon.test")
GREEN = (("127.0.0.1", 18081), "green.propylon.test")


def check_login(req) -> bool:
    """The demo's whole credential check."""
    return req.headers.get_bytes("Authorization") == b"password"


class MyGateway(ProxyHttp):
    def __init__(self, req_metric: Counter) -> None:
        self.req_metric = req_metric

    def new_ctx(self):
        return {}

    async def request_filter(self, session, ctx):
        req = session.req_header
        if req.path.startswith("/login") and not check_login(req):
            await session.respond_error(403)
            return True  # answered: stop here
        return False

    async def upstream_peer(self, session, ctx):
        addr, host = GREEN if session.req_header.path.startswith("/family") else BLUE
        ctx["host"] = host
        log.info("Connecting to %r", addr)
        return HttpPeer(addr, tls=False, sni=host)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", ctx["host"])

    async def response_filter(self, session, upstream_response, ctx):
        upstream_response.insert_header("Server", "MyGateway")  # replaces any existing one
        upstream_response.remove_header("alt-svc")

    async def logging(self, session, e, ctx):
        resp = session.response_written()
        log.info("Request to %s responded with status code %d",
                 session.req_header.path, resp.status if resp is not None else 0)
        self.req_metric.inc()


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    req_metric = Counter("req_counter", "Number of requests")
    proxy = http_proxy_service(server.configuration, MyGateway(req_metric))
    proxy.add_tcp("127.0.0.1:6191")
    server.add_service(proxy)

    metrics = prometheus_http_service()
    metrics.add_tcp("127.0.0.1:6192")
    server.add_service(metrics)

    log.info("Gateway running on 127.0.0.1:6191, metrics on http://127.0.0.1:6192/metrics")
    server.run_forever()


if __name__ == "__main__":
    main()
