"""``ProxyHttp``: the base class of every Propylon proxy.

Subclass it and override the hooks you need; only :meth:`ProxyHttp.upstream_peer`
is required. The engine calls the hooks at fixed points of each request's life, in
this order (see ``docs/phases.md``)::

    new_ctx → early_request_filter → request_filter → proxy_upstream_filter
      → [upstream_peer → connect (fail_to_connect) → connected_to_upstream
         → upstream_request_filter → request_body_filter per chunk
         → upstream_response_filter → response_filter
         → upstream_response_body_filter / response_body_filter per chunk
         → upstream_response_trailer_filter → response_trailer_filter]
                                                (retried while the error says so)
      → fail_to_proxy (on error) → logging

Hooks you do not override are never called: the service looks at your class once
(``resolve_hooks``, driven by the ``HOOKS`` table at the end of this module) and
leaves the defaults out of the request path. Any hook may raise
:class:`~propylon.errors.Error`; before the response head went out,
``fail_to_proxy`` turns it into a response, after that the downstream connection
is closed. ``logging`` runs exactly once for every request.

``ctx`` is whatever ``new_ctx`` returned for this request; every hook gets the same
object, so per-request state lives there.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from ..errors import Error
from ..protocols.digest import Digest
from ..protocols.http.header import HeaderMap, RequestHeader, ResponseHeader
from ..upstreams.peer import HttpPeer

if TYPE_CHECKING:
    from .session import Session

__all__ = ["ProxyHttp", "FailToProxy", "HOOKS", "AWAITED", "CALLED", "overridden_hooks", "resolve_hooks"]


@dataclass(slots=True)
class FailToProxy:
    """What ``fail_to_proxy`` did: the status sent (0 = nothing sent) and whether
    the downstream connection may serve another request."""

    error_code: int
    can_reuse_downstream: bool = False


class ProxyHttp:
    """The hooks of a programmable HTTP proxy. See the module docstring for the order."""

    # --- request phase ------------------------------------------------------------
    def new_ctx(self) -> Any:
        """Create the per-request context, passed to every hook as ``ctx``.

        Runs first, once per request. Default: ``None``.
        """
        return None

    async def early_request_filter(self, session: "Session", ctx: Any) -> None:
        """Runs right after the request head is read, before ``request_filter``.

        For work that must precede everything else (e.g. choosing per-request
        options). May change ``session.req_header``. Default: nothing.
        """

    async def request_filter(self, session: "Session", ctx: Any) -> bool:
        """Inspect or answer the request before anything goes upstream.

        Typical uses: authentication, rate limiting, redirects, serving a response
        directly. Return ``True`` when this hook already wrote a response (e.g. with
        ``await session.respond_error(403)``): the request ends there and goes no
        further. Return ``False`` to continue to the upstream. Default: ``False``.
        """
        return False

    async def proxy_upstream_filter(self, session: "Session", ctx: Any) -> bool:
        """Decide whether to go upstream at all (runs after the request filters).

        Return ``False`` to stop: if nothing was written yet, the client gets a 502
        and the connection stays usable. Default: ``True``.
        """
        return True

    async def upstream_peer(self, session: "Session", ctx: Any) -> HttpPeer:
        """Return the :class:`HttpPeer` this request goes to. **Required.**

        Called once per attempt, so a retry may pick another peer. Raise ``Error``
        to fail the request (its source decides the status, usually 500).
        """
        raise NotImplementedError(f"{type(self).__name__} must define upstream_peer()")

    # --- connection phase -----------------------------------------------------------
    def fail_to_connect(self, session: "Session", peer: HttpPeer, ctx: Any, e: Error) -> Error:
        """Called when connecting to ``peer`` failed; return the error to go on with.

        Connect errors are not retried unless this hook says so with
        ``e.set_retry(True)``; retries stop after ``max_retries`` attempts in all
        (first one included). Default: returns ``e`` unchanged.
        """
        return e

    async def connected_to_upstream(self, session: "Session", reused: bool, peer: HttpPeer,
                                    digest: Optional[Digest], ctx: Any) -> None:
        """Runs once a connection to the upstream is ready, before the request is sent.

        ``reused`` says whether it came from the pool; ``digest`` describes the
        socket (addresses, TLS). Default: nothing.
        """

    async def upstream_request_filter(self, session: "Session", upstream_request: RequestHeader,
                                      ctx: Any) -> None:
        """Change the request head sent upstream (a copy of the client's, with
        hop-by-hop fields removed): set ``Host``, add or drop headers, rewrite the
        path with ``set_uri``. Default: nothing.
        """

    async def request_body_filter(self, session: "Session", body: Optional[bytes],
                                  end_of_stream: bool, ctx: Any) -> Optional[bytes]:
        """Runs for each piece of request body on its way upstream.

        ``body`` is None when there is no more (a request without body gets exactly
        one call with ``None`` and ``end_of_stream=True``). Return ``None`` to send
        the piece unchanged, or bytes to send instead (``b""`` drops it). Raise
        ``Error`` to stop, e.g. ``Error.http_status(413)`` for an oversized upload.
        On a retry the buffered body passes through this hook again.
        Default: nothing.
        """
        return None

    # --- response phase ---------------------------------------------------------------
    async def upstream_response_filter(self, session: "Session", upstream_response: ResponseHeader,
                                       ctx: Any) -> None:
        """Change the upstream's response head; runs before any cache logic and
        before ``response_filter``. Default: nothing.
        """

    async def response_filter(self, session: "Session", upstream_response: ResponseHeader,
                              ctx: Any) -> None:
        """Change the response head just before it goes to the client (status,
        headers). If you change the body's length in a body filter, remove
        ``Content-Length`` here: the body is then sent chunked. Default: nothing.
        """

    def upstream_response_body_filter(self, session: "Session", body: Optional[bytes],
                                      end_of_stream: bool, ctx: Any) -> Optional[bytes]:
        """Runs for each piece of upstream response body, before
        ``response_body_filter`` (and before any cache). Synchronous, like Pingora's.
        Return ``None`` to keep the piece, or bytes to replace it. Default: nothing.
        """
        return None

    def response_body_filter(self, session: "Session", body: Optional[bytes],
                             end_of_stream: bool, ctx: Any) -> Optional[bytes]:
        """Runs for each piece of response body just before it goes to the client.

        ``end_of_stream`` is True with the last piece (``body`` may then be None).
        Return ``None`` to send the piece unchanged, or bytes to send instead
        (``b""`` drops it). Synchronous: keep it cheap. Default: nothing.
        """
        return None

    def upstream_response_trailer_filter(self, session: "Session", trailers: HeaderMap,
                                         ctx: Any) -> None:
        """Change the upstream's trailers (chunked HTTP/1 or HTTP/2) in place.
        Default: nothing.
        """

    async def response_trailer_filter(self, session: "Session", trailers: HeaderMap,
                                      ctx: Any) -> Optional[bytes]:
        """Change the response trailers (of a chunked HTTP/1 or an HTTP/2 upstream
        response) in place just before they go to the client, after
        ``upstream_response_trailer_filter``. Return bytes to send them as a final
        body piece instead of the trailers (e.g. for a client that cannot take
        trailers). An error raised here is logged and the trailers go out as they
        are, as in Pingora (which calls this hook for HTTP/2 upstreams only; HTTP/1
        trailers are on its to-do list). Default: nothing.
        """
        return None

    # --- errors and the end --------------------------------------------------------------
    def error_while_proxy(self, peer: HttpPeer, session: "Session", e: Error, ctx: Any,
                          client_reused: bool) -> Error:
        """Called when an error happens after connecting (while sending the request
        or reading the response); return the error to go on with.

        The default adds the peer to the error's context and settles a
        "retry only if the connection was reused" error: it is retried when the
        connection came from the pool and the request body still fits the retry
        buffer (``client_reused``).
        """
        e.context = f"{e.context}, Peer: {peer}" if e.context else f"Peer: {peer}"
        e.decide_reused(client_reused)
        return e

    async def fail_to_proxy(self, session: "Session", e: Error, ctx: Any) -> FailToProxy:
        """Turn a final error into a response, if none was sent yet.

        Default: ``ErrorType.http_status(c)`` → c; an upstream error (timeouts
        included) → 502; a downstream read/write/closed error → nothing (the client
        is gone); another downstream error → 400; anything else → 500. The response
        is written with ``session.respond_error(code)`` and the downstream
        connection is not reused.
        """
        code = default_error_status(e)
        if code > 0:
            await session.respond_error(code)
        return FailToProxy(code, False)

    def suppress_error_log(self, session: "Session", ctx: Any, error: Error) -> bool:
        """Return True to skip the "Fail to proxy" error line for ``error``. Default: False."""
        return False

    def request_summary(self, session: "Session", ctx: Any) -> str:
        """One line describing the request, for error logs. Default:
        ``"GET /path, Host: example.com"``."""
        return default_request_summary(session)

    async def logging(self, session: "Session", e: Optional[Error], ctx: Any) -> None:
        """Runs exactly once at the end of every request, whatever happened.

        ``e`` is the error that ended it, or None. For access logs and metrics.
        Default: nothing.
        """


def default_request_summary(session: "Session") -> str:
    """``"GET /path, Host: example.com"`` for a session's request."""
    req = session.req_header
    return f"{req.method} {req.uri}, Host: {req.headers.get('host', '')}"


def default_error_status(e: Error) -> int:
    """The status Pingora's default ``fail_to_proxy`` picks for an error."""
    from ..errors import ErrorSource, ErrorType

    et = e.etype
    if et.name == "HTTPStatus":
        return et.code or 500
    src = e.esource
    if src is ErrorSource.UPSTREAM:
        return 502
    if src is ErrorSource.DOWNSTREAM:
        if et in (ErrorType.READ_ERROR, ErrorType.WRITE_ERROR, ErrorType.CONNECTION_CLOSED):
            return 0
        return 400
    return 500


#: How the engine calls a hook: awaits it (``async def``) or calls it (plain ``def``).
AWAITED = "awaited"
CALLED = "called"

#: Every hook with a default, in the order of a request's life: name → how the
#: engine calls it. The engine keeps the hooks a proxy overrides in one tuple, in
#: this order (``resolve_hooks``), and skips the others. Adding a hook is a method
#: on ``ProxyHttp`` with its docstring, one entry here, and its call in the engine.
#: (``new_ctx`` and ``upstream_peer`` are not here: the engine always has them.)
HOOKS: dict[str, str] = {
    "early_request_filter": AWAITED,
    "request_filter": AWAITED,
    "proxy_upstream_filter": AWAITED,
    "fail_to_connect": CALLED,
    "connected_to_upstream": AWAITED,
    "upstream_request_filter": AWAITED,
    "request_body_filter": AWAITED,
    "upstream_response_filter": AWAITED,
    "response_filter": AWAITED,
    "upstream_response_body_filter": CALLED,
    "response_body_filter": CALLED,
    "upstream_response_trailer_filter": CALLED,
    "response_trailer_filter": AWAITED,
    "error_while_proxy": CALLED,
    "fail_to_proxy": AWAITED,
    "suppress_error_log": CALLED,
    "request_summary": CALLED,
    "logging": AWAITED,
}

def overridden_hooks(proxy: ProxyHttp) -> frozenset[str]:
    """The optional hooks the proxy's class defines itself."""
    cls = type(proxy)
    return frozenset(
        name for name in HOOKS
        if getattr(cls, name, None) is not getattr(ProxyHttp, name)
    )


def resolve_hooks(proxy: ProxyHttp) -> tuple:
    """One slot per ``HOOKS`` entry, in order: the proxy's bound method where its
    class overrides the hook, else None.

    An ``async def`` where the engine calls a plain function is refused here, once,
    rather than leaving a coroutine unawaited on every request. (A plain ``def``
    where the engine awaits may return an awaitable, e.g. from a decorator.)
    """
    overridden = overridden_hooks(proxy)
    slots = []
    for name, how in HOOKS.items():
        if name not in overridden:
            slots.append(None)
            continue
        fn = getattr(proxy, name)
        if how is CALLED and inspect.iscoroutinefunction(fn):
            raise TypeError(f"{type(proxy).__name__}.{name} must be a plain def, not async def: "
                            "the engine calls it without awaiting")
        slots.append(fn)
    return tuple(slots)
