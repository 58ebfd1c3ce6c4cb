"""A plain forwarder for tests that need the proxy in a process of its own.

    python tests/proxy/run_forwarder.py LISTEN_PORT UPSTREAM_HOST:PORT [-c CONF ...]
"""

import sys

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service


class Forwarder(ProxyHttp):
    def __init__(self, addr: str) -> None:
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))

    async def upstream_peer(self, session, ctx):
        return HttpPeer(self.addr, False, "")


def main() -> None:
    listen, upstream = sys.argv[1], sys.argv[2]
    server = Server.from_args(sys.argv[3:])
    server.bootstrap()
    svc = http_proxy_service(server.configuration, Forwarder(upstream))
    svc.add_tcp(f"127.0.0.1:{listen}")
    server.add_service(svc)
    server.run_forever()


if __name__ == "__main__":
    main()
