"""Lesson 32: a custom health check that reads the body – only "BLUE" counts as healthy.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/32_custom_health_check.py
    # log: Custom Check Failed for 127.0.0.1:18081: Body did not contain 'BLUE'
    #      ... becomes unhealthy, InvalidBody context: Body validation failed
    while true; do curl -s http://127.0.0.1:6176/; echo; sleep 0.5; done   # only BLUE

Green answers 200, so a status check would pass it; this check opens its own
socket, sends a raw request and looks for a string in the answer. Any class with
``async check(backend)`` (raise on failure) and ``health_threshold(success)`` will
do; subclassing ``HealthCheck`` provides the rest.
"""

import asyncio
import logging

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import Backend, HealthCheck, LoadBalancer, RoundRobin

log = logging.getLogger("custom_health_check")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")
INVALID_BODY = ErrorType.custom("InvalidBody")
MAX_READ = 64 * 1024  # a health page is small; do not read an unbounded answer


class BodyMatchCheck(HealthCheck):
    """Healthy when ``GET /`` answers (within 1 s) with ``expected`` in its bytes."""

    def __init__(self, host: str, expected: str, timeout: float = 1.0) -> None:
        self.host = host
        self.expected = expected.encode()
        self.timeout = timeout

    async def check(self, backend: Backend) -> None:
        if backend.is_unix:
            raise Error.explain(ErrorType.INTERNAL_ERROR, "Custom check only supports TCP backends")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(backend.host, backend.port), self.timeout)
        except TimeoutError:
            raise Error.explain(ErrorType.CONNECT_TIMEDOUT, "Connection timed out") from None
        except ConnectionRefusedError as e:
            raise Error.because(ErrorType.CONNECT_REFUSED, "Connection refused", e) from None
        except OSError as e:
            raise Error.because(ErrorType.CONNECT_ERROR, "Connection failed", e) from None
        try:
            writer.write(f"GET / HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n\r\n".encode())
            try:
                await writer.drain()
            except OSError as e:
                raise Error.because(ErrorType.WRITE_ERROR, "Write failed", e) from None
            # Connection: close, so the answer ends at EOF; one deadline for all of it.
            response = b""
            try:
                async with asyncio.timeout(self.timeout):
                    while len(response) < MAX_READ:
                        more = await reader.read(MAX_READ - len(response))
                        if not more:
                            break
                        response += more
            except TimeoutError:
                raise Error.explain(ErrorType.READ_TIMEDOUT, "Read timed out") from None
            except OSError as e:
                raise Error.because(ErrorType.READ_ERROR, "Read failed", e) from None
        finally:
            writer.close()

        if self.expected not in response:
            log.warning("Custom Check Failed for %s: Body did not contain '%s'",
                        backend.addr, self.expected.decode())
            raise Error.explain(INVALID_BODY, "Body validation failed")

    def health_threshold(self, success: bool) -> int:
        return 1  # one result flips the state either way


class LB(ProxyHttp):
    """Round robin over the backends that passed the body check."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def upstream_peer(self, session, ctx):
        upstream = self.lb.select(b"", 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, "All upstreams are down")
        log.info("Routed to upstream: %r", upstream)
        return HttpPeer(upstream, tls=False, sni="custom-check.cluster.local")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "custom-check-cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    upstreams = LoadBalancer.try_from_iter(["127.0.0.1:18080", "127.0.0.1:18081"], selection=RoundRobin)
    upstreams.set_health_check(BodyMatchCheck(host="localhost", expected="BLUE"))
    upstreams.health_check_frequency = 1.0
    upstreams.parallel_health_check = True
    background = background_service("custom_health_check", upstreams)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6176")
    log.info("Custom Health Check LB running on 127.0.0.1:6176")

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
