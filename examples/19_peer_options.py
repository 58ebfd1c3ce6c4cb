"""Lesson 19: peer options – per-request timeouts, and timeouts answered with 504.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/19_peer_options.py
    curl -i http://127.0.0.1:6163/normal    # 200 from blue
    curl -i http://127.0.0.1:6163/timeout   # 504 after ~100 ms (connect timeout)
    curl -i "http://127.0.0.1:6163/slow?ms=1000"   # 504 after ~300 ms (read timeout)

``PeerOptions`` carry the budget of one attempt: ``connection_timeout`` for the
TCP connect, ``read_timeout``/``write_timeout`` for each wait on the upstream.
``/timeout`` goes to the lab's blackhole, where a connect hangs until our timeout
fires; ``/slow`` reaches blue but asks it to answer later than we will wait.
By default a timeout is an upstream error (502); ``fail_to_proxy`` here answers
504 Gateway Timeout instead, the status that tells clients what happened.
"""

import logging

from propylon import (ErrorType, FailToProxy, HttpPeer, PeerOptions, ProxyHttp, Server,
                      http_proxy_service)

log = logging.getLogger("peer_options")

BLUE = ("127.0.0.1", 18080)
BLACKHOLE = ("127.0.0.1", 18099)  # stands for an address that never answers
TIMEOUTS = (ErrorType.CONNECT_TIMEDOUT, ErrorType.READ_TIMEDOUT)


class TimeoutProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        path = session.req_header.path
        if path == "/timeout":
            log.info("Routing to Blackhole (%s:%d) to force timeout...", *BLACKHOLE)
            return HttpPeer(BLACKHOLE, False, "blackhole.propylon.test",
                            PeerOptions(connection_timeout=0.1, read_timeout=2, write_timeout=2))
        if path == "/slow":
            # Connect quickly, then give up waiting for the answer after 300 ms.
            log.info("Routing to Blue (Short Read Timeout)")
            return HttpPeer(BLUE, False, "blue.propylon.test",
                            PeerOptions(connection_timeout=2, read_timeout=0.3, write_timeout=2))
        log.info("Routing to Blue (Standard Timeout)")
        return HttpPeer(BLUE, False, "blue.propylon.test",
                        PeerOptions(connection_timeout=2, read_timeout=2, write_timeout=2))

    async def fail_to_proxy(self, session, e, ctx):
        if e.etype in TIMEOUTS:
            log.warning("Custom Error Handler: %s!", "Connection Timed Out"
                        if e.etype == ErrorType.CONNECT_TIMEDOUT else "Upstream Read Timed Out")
            code = 504
        else:
            log.warning("Fail to proxy: %s", e)
            code = 502
        await session.respond_error(code)
        return FailToProxy(error_code=code, can_reuse_downstream=False)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, TimeoutProxy())
    proxy.add_tcp("127.0.0.1:6163")
    log.info("Timeout Config Proxy running on 127.0.0.1:6163")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
