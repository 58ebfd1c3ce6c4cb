"""Lesson 29: sticky sessions – a ``session-id`` cookie keeps a user on one backend.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/29_sticky_sessions.py
    curl -v -c /tmp/cookies.txt http://127.0.0.1:6173/                 # Set-Cookie: session-id=user-100
    curl -v -b /tmp/cookies.txt http://127.0.0.1:6173/                 # same backend
    curl -v -b /tmp/cookies.txt http://127.0.0.1:6173/different/path   # still the same backend

The session id, not the path, is the Ketama key, so every path a user visits lands
on the same backend. A new id is chosen in ``upstream_peer`` (request phase) and
the cookie is written in ``response_filter`` (response phase): the per-request
context carries it from one to the other.
"""

import itertools
import logging
from dataclasses import dataclass
from typing import Optional

from propylon import Error, ErrorType, HttpPeer, ProxyHttp, Server, background_service, http_proxy_service
from propylon.lb import Consistent, LoadBalancer

log = logging.getLogger("sticky_sessions")

NO_UPSTREAM = ErrorType.custom("NoUpstreamAvailable")
COOKIE = "session-id"


@dataclass
class StickyCtx:
    """Per-request state: the id issued to a new user, for ``response_filter``."""

    new_session_id: Optional[str] = None


def session_cookie(cookie_header: Optional[str]) -> Optional[str]:
    """The value of the ``session-id`` cookie in a ``Cookie`` header, if any."""
    for part in (cookie_header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE and value:
            return value
    return None


class LB(ProxyHttp):
    """Routes by a hash of the session id, issuing one to new users."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb
        # One process, one event loop: a plain counter is enough for demo ids.
        self.ids = itertools.count(100)

    def new_ctx(self):
        return StickyCtx()

    async def upstream_peer(self, session, ctx):
        session_id = session_cookie(session.get_header("Cookie"))
        if session_id is not None:
            log.info("Found existing session cookie: %s", session_id)
        else:
            session_id = f"user-{next(self.ids)}"
            log.info("No cookie found. Generated new session id: %s", session_id)
            ctx.new_session_id = session_id

        upstream = self.lb.select(session_id.encode(), 256)
        if upstream is None:
            raise Error.explain(NO_UPSTREAM, "Empty upstream pool")
        log.info("Session '%s' stuck to upstream: %r", session_id, upstream)
        return HttpPeer(upstream, tls=False, sni="sticky.cluster")

    async def response_filter(self, session, upstream_response, ctx):
        if ctx.new_session_id is not None:
            upstream_response.insert_header("Set-Cookie", f"{COOKIE}={ctx.new_session_id}; Path=/")
            log.info("Injected Set-Cookie header for %s", ctx.new_session_id)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    upstreams = LoadBalancer.try_from_iter(
        ["127.0.0.1:18080", "127.0.0.1:18081"],  # blue, green
        selection=Consistent,
    )
    background = background_service("sticky_lb", upstreams)

    proxy = http_proxy_service(server.configuration, LB(background.task()))
    proxy.add_tcp("127.0.0.1:6173")
    log.info("Sticky Session LB running on 127.0.0.1:6173")

    server.add_service(background)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
