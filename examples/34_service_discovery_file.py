"""Lesson 34: file-based service discovery – edit a file, traffic follows within a second.

    python -m propylon.lab &
    mkdir -p conf && echo "127.0.0.1:18080" > conf/upstreams.txt
    PROPYLON_LOG=info python examples/34_service_discovery_file.py
    while true; do curl -s http://127.0.0.1:6178/; echo; sleep 1; done   # BLUE
    echo "127.0.0.1:18081" > conf/upstreams.txt                          # GREEN within 1 s

The file path is ``conf/upstreams.txt`` unless ``UPSTREAMS_FILE`` names another.
One backend per line (``host:port``, optional weight after a space, ``#`` comments).
The background service calls ``discover()`` every second; ``FileDiscovery`` only
re-reads the file when it changed, and a missing or invalid file keeps the last
good set (with one warning), so a half-written edit never empties the pool. Any
object with ``async discover() -> (backends, enablement)`` can replace it.
"""

import logging
import os

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import Backends, FileDiscovery, LoadBalancer, RoundRobin

log = logging.getLogger("file_discovery")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")


class LB(ProxyHttp):
    """Round robin over the backends the file lists now."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def upstream_peer(self, session, ctx):
        upstream = self.lb.select(b"", 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, "Empty upstream pool")
        log.info("Routed to upstream: %r", upstream)
        return HttpPeer(upstream, tls=False, sni="file-discovery.cluster")

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("Host", "file-discovery-cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    path = os.environ.get("UPSTREAMS_FILE", "conf/upstreams.txt")
    upstreams = LoadBalancer.from_backends(Backends(FileDiscovery(path)), selection=RoundRobin)
    upstreams.update_frequency = 1.0  # call discover() every second
    background = background_service("file_discovery", upstreams)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6178")
    log.info("File-Based Discovery LB running on 127.0.0.1:6178")
    log.info("Watching file: %s", path)

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
