"""Lesson 38: in-flight limit – at most 2 requests inside the proxy at once, globally.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/38_inflight_limit.py
    for i in $(seq 5); do curl -s -o /dev/null -w "%{http_code}\\n" http://127.0.0.1:6182/ & done; wait
    # 200 ×2 (after ~2 s), 429 ×3 (at once)
    curl http://127.0.0.1:6182/inflight         # "inflight 0" once they are done

``upstream_peer`` sleeps 2 s to stand in for a slow backend, so parallel requests
overlap. ``Inflight.incr`` returns a guard and the new count; an admitted request
keeps its guard in the context until ``logging``, which the engine calls exactly
once per request however it ends (answered, failed, or the client went away).
Python has no deterministic destructor, so the guard is released explicitly there,
and at once for a rejected request. ``/inflight`` reports the count without taking
a slot.
"""

import asyncio
import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.limits import Inflight

log = logging.getLogger("inflight_limit")

BLUE = ("127.0.0.1", 18080)
MAX_CONCURRENT_REQ = 2
KEY = "global_limit"  # one key for everyone; a client IP here would limit per client

INFLIGHT_LIMITER = Inflight()


class InflightCtx:
    """The slot this request holds, if it was admitted."""

    __slots__ = ("guard",)

    def __init__(self) -> None:
        self.guard = None


class InflightLimitProxy(ProxyHttp):
    def new_ctx(self):
        return InflightCtx()

    async def request_filter(self, session, ctx):
        if session.req_header.path == "/inflight":
            count = INFLIGHT_LIMITER.get(KEY)
            await session.write_response(200, f"inflight {count}\n", {"Content-Type": "text/plain"})
            return True
        guard, count = INFLIGHT_LIMITER.incr(KEY, 1)
        if count > MAX_CONCURRENT_REQ:
            guard.release()  # never admitted: give the slot back now
            log.warning("In-flight Limit Exceeded %d/%d", count, MAX_CONCURRENT_REQ)
            await session.respond_error(429)
            return True
        ctx.guard = guard
        return False

    async def upstream_peer(self, session, ctx):
        await asyncio.sleep(2)  # the slow backend of the lesson
        return HttpPeer(BLUE, tls=False, sni="inflight.cluster")

    async def logging(self, session, e, ctx):
        if ctx is not None and ctx.guard is not None:
            ctx.guard.release()
            log.info("Request finished (%s); in flight: %d",
                     "ok" if e is None else e.etype, INFLIGHT_LIMITER.get(KEY))


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, InflightLimitProxy())
    proxy.add_tcp("127.0.0.1:6182")
    log.info("In-flight Limiter running on 127.0.0.1:6182")
    log.info("Max Concurrent Requests: %d", MAX_CONCURRENT_REQ)
    log.info("Note: upstream_peer waits 2 s to simulate a slow backend.")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
