"""``ProxyHttp``: the base class of every Propylon proxy.

Subclass it and override the hooks you need; only :meth:`ProxyHttp.upstream_peer`
is required. The engine calls the hooks at fixed points of each request's life, in
this order (see ``docs/phases.md``)::

    new_ctx → early_request_filter → request_filter
      → cache stage, when the proxy caches (request_cache_filter → cache_key_callback
        → is_purge [→ purge_response_filter] → lookup: cache_vary_filter,
        cache_hit_filter, should_serve_stale; a hit is answered here:
        cache_not_modified_filter → range_header_filter → response_filter → body)
      → proxy_upstream_filter
      → [upstream_peer → connect (fail_to_connect) → connected_to_upstream
         → upstream_request_filter → request_body_filter per chunk
         → upstream_response_filter → response_cache_filter / cache_vary_filter
           / cache_miss → response_filter
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

import enum
import inspect
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ..cache import (CacheKey, CacheMeta, NoCacheReason, RangeRequest, default_cache_key, not_modified, range_request,
                     variance_from_vary)
from ..cache.storage import HitHandler
from ..errors import Error, ErrorSource, ErrorType
from ..protocols.digest import Digest
from ..protocols.http.header import HeaderMap, RequestHeader, ResponseHeader
from ..upstreams.peer import HttpPeer

if TYPE_CHECKING:
    from .session import Session

__all__ = ["ProxyHttp", "FailToProxy", "ForcedFreshness", "PurgeStatus", "HOOKS", "AWAITED", "CALLED", "overridden_hooks", "resolve_hooks",
           "timed_hooks", "timed"]


@dataclass(slots=True)
class FailToProxy:
    """What ``fail_to_proxy`` did: the status sent (0 = nothing sent) and whether
    the downstream connection may serve another request."""

    error_code: int
    can_reuse_downstream: bool = False


class ForcedFreshness(enum.Enum):
    """What ``cache_hit_filter`` may decide about an entry found in the cache."""

    FORCE_FRESH = "force_fresh"      #: serve it as a HIT even if it is stale
    FORCE_EXPIRED = "force_expired"  #: treat it as stale: revalidate with the origin
    FORCE_MISS = "force_miss"        #: ignore it: fetch and store a new copy


class PurgeStatus(enum.Enum):
    """The outcome of a purge, given to ``purge_response_filter``."""

    PURGED = 200
    NOT_FOUND = 404
    NOT_ENABLED = 405
    ERROR = 500


#: The reason ``response_cache_filter``'s default gives: nothing is cached unless the
#: proxy says how (as in Pingora).
DEFAULT_UNCACHEABLE = NoCacheReason.custom("default")


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

    # --- cache stage (runs only when the proxy overrides request_cache_filter or is_purge)
    def request_cache_filter(self, session: "Session", ctx: Any) -> None:
        """Decide whether this request uses the cache: call
        ``session.cache.enable(storage, eviction, predictor, lock)`` (and optionally
        ``session.cache.set_max_file_size_bytes(n)``) to turn it on.

        Runs after ``request_filter``. An exception is logged and the request goes on
        uncached. Default: nothing (the cache stays off and costs nothing).
        """

    def cache_key_callback(self, session: "Session", ctx: Any) -> CacheKey:
        """The cache key of this request; runs only when the cache is enabled.

        Default: :func:`propylon.cache.default_cache_key`, the Host and the request
        target (path and query). The method is not part of it, so HEAD is answered
        from a GET's entry and a PURGE names the same entry. An exception disables the
        cache for the request (StorageError).
        """
        return default_cache_key(session.req_header)

    def cache_miss(self, session: "Session", ctx: Any) -> None:
        """Runs when the lookup found nothing and this request will fetch and fill the
        entry. Default: ``session.cache.cache_miss()``; an override must call it too
        unless it disables or bypasses the cache."""
        session.cache.cache_miss()

    async def cache_hit_filter(self, session: "Session", meta: CacheMeta, hit: HitHandler,
                               is_fresh: bool, ctx: Any) -> Optional[ForcedFreshness]:
        """Runs when the lookup found an entry, before it is used. ``meta`` is its head
        and timestamps, ``is_fresh`` whether it is within its lifetime. Return a
        :class:`ForcedFreshness` to override that (serve it anyway, revalidate it, or
        ignore it), or None to go by its freshness. Default: None.
        """
        return None

    def cache_vary_filter(self, meta: CacheMeta, ctx: Any, req: RequestHeader) -> Optional[bytes]:
        """The variance (secondary key) of this request for a resource whose response
        ``meta`` describes; used at lookup and when a response is stored.

        Default: built from the request's values of the fields the response's ``Vary``
        names (None when it has no ``Vary``: one variant). Pingora's default ignores
        ``Vary``; storing variants apart is the safe reading of RFC 9111 §4.1.
        """
        return variance_from_vary(meta.header.headers.get_all_bytes(b"vary"), req.headers)

    def cache_not_modified_filter(self, session: "Session", resp: ResponseHeader, ctx: Any) -> bool:
        """Whether the client's conditionals (``If-None-Match``, ``If-Modified-Since``)
        say its copy of the cached ``resp`` is current; True sends a 304 without body.
        Default: :func:`propylon.cache.not_modified` (RFC 9110 §13.2.2 order)."""
        return not_modified(session.req_header, resp)

    def range_header_filter(self, session: "Session", resp: ResponseHeader, ctx: Any) -> RangeRequest:
        """How to answer the client's ``Range`` from the cached ``resp``: the whole body,
        one range (206), several (206 ``multipart/byteranges``) or none satisfiable
        (416). Called for a hit whose body can be sliced (complete, known length),
        and for a miss being filled with a known length (the fill takes the whole
        body, the client gets the ranges as it arrives).
        Default: :func:`propylon.cache.range_request` (at most 199 ranges; overlapping
        ones serve the whole body)."""
        return range_request(session.req_header, resp)

    def is_purge(self, session: "Session", ctx: Any) -> bool:
        """Whether this request purges its cache key instead of being served (e.g. the
        ``PURGE`` method). Called even when the cache is off, which answers 405.
        A purge removes every ``Vary`` variant of the key and answers 200 when
        something was removed, 404 when nothing was there. Default: False."""
        return False

    def purge_response_filter(self, session: "Session", ctx: Any, status: PurgeStatus,
                              resp: ResponseHeader) -> None:
        """Change the response to a purge (status, headers) before it is sent. An
        exception turns it into a 500. Default: nothing."""

    def should_serve_stale(self, session: "Session", ctx: Any, error: Optional[Error]) -> bool:
        """Whether a stale entry may be served. ``error`` is None when asked for
        stale-while-revalidate (the entry is in its SWR window and another request, or
        a background refresh, fetches the new copy), else the upstream error that made
        the fetch fail (stale-if-error, within its window).

        Default (Pingora's): only on errors from the upstream, so
        stale-while-revalidate is off until a proxy returns True for None.
        """
        return error is not None and error.esource is ErrorSource.UPSTREAM

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

    def response_cache_filter(self, session: "Session", resp: ResponseHeader,
                              ctx: Any) -> Union[CacheMeta, NoCacheReason]:
        """Decide whether an upstream response may be stored (runs after
        ``upstream_response_filter``, only for requests that use the cache). Return a
        :class:`CacheMeta` (usually ``resp_cacheable(CacheControl.from_headers(resp.headers),
        resp, auth_present, defaults)``) to store it, or a :class:`NoCacheReason`.
        For a 304 that revalidates a stale entry, ``resp`` is the stored head merged
        with the 304's freshness fields. Default: ``NoCacheReason.custom("default")``:
        nothing is stored unless the proxy says how long.
        """
        return DEFAULT_UNCACHEABLE

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
        is written with ``session.respond_error(code, keepalive=True)``: the client
        connection carries its next request when the request body arrived in full
        and the client did not ask to close, as with nginx. (Pingora closes it after
        every error response; return ``FailToProxy(code, False)`` for that.)
        """
        return await default_fail_to_proxy(session, e)

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


# Read once (each read of an Enum member through its class calls the class's
# ``__getattr__`` on Python 3.11); they are looked at for every error answered.
_UPSTREAM = ErrorSource.UPSTREAM
_DOWNSTREAM = ErrorSource.DOWNSTREAM


async def default_fail_to_proxy(session: "Session", e: Error) -> FailToProxy:
    """The default ``fail_to_proxy`` (see there), which the engine also runs inline
    for a proxy that does not override it."""
    code = default_error_status(e)
    if code > 0:
        await session.respond_error_with_body(code, b"", True)  # respond_error's own work, one call less
        return FailToProxy(code, True)
    return FailToProxy(0, False)


def default_error_status(e: Error) -> int:
    """The status Pingora's default ``fail_to_proxy`` picks for an error."""
    et = e.etype
    if et.name == "HTTPStatus":
        return et.code or 500
    src = e.esource
    if src is _UPSTREAM:
        return 502
    if src is _DOWNSTREAM:
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
    "request_cache_filter": CALLED,
    "cache_key_callback": CALLED,
    "is_purge": CALLED,
    "purge_response_filter": CALLED,
    "cache_vary_filter": CALLED,
    "cache_hit_filter": AWAITED,
    "cache_miss": CALLED,
    "should_serve_stale": CALLED,
    "cache_not_modified_filter": CALLED,
    "range_header_filter": CALLED,
    "proxy_upstream_filter": AWAITED,
    "fail_to_connect": CALLED,
    "connected_to_upstream": AWAITED,
    "upstream_request_filter": AWAITED,
    "request_body_filter": AWAITED,
    "upstream_response_filter": AWAITED,
    "response_cache_filter": CALLED,
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


def timed(name: str, fn: Callable, awaited: bool, report: Callable[[str, float, float], None]) -> Callable:
    """``fn`` wrapped to call ``report(name, start, end)`` (``perf_counter`` times)
    each time it returns or raises; ``awaited``: the engine awaits it."""
    if awaited:
        async def timed_awaited(*args: Any) -> Any:
            start = perf_counter()
            try:
                result = fn(*args)
                # A plain def may hand back an awaitable (see resolve_hooks).
                return await result if inspect.isawaitable(result) else result
            finally:
                report(name, start, perf_counter())
        return timed_awaited

    def timed_called(*args: Any) -> Any:
        start = perf_counter()
        try:
            return fn(*args)
        finally:
            report(name, start, perf_counter())
    return timed_called


def timed_hooks(hooks: tuple, report: Callable[[str, float, float], None]) -> tuple:
    """A table from ``resolve_hooks`` with each hook that is there timed (see
    :func:`timed`); the hooks left out stay None, so the table says the same about
    which hooks run."""
    return tuple(None if fn is None else timed(name, fn, how is AWAITED, report)
                 for (name, how), fn in zip(HOOKS.items(), hooks))
