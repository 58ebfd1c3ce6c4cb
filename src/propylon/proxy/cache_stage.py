"""The engine's cache stage (Pingora's ``proxy_cache`` and ``proxy_purge``).

The engine calls into this module only for a proxy that overrides
``request_cache_filter`` or ``is_purge``; for any other proxy none of it runs and
``Session.http_cache`` stays None. The steps, in the order the engine takes them:

* :func:`run` after ``request_filter``: enable (``request_cache_filter``), key
  (``cache_key_callback``), purge (``is_purge``), then the lookup loop with the cache
  lock. A fresh entry, a stale one under stale-while-revalidate, or a fill in
  progress found by a lookup is answered here (:func:`serve`) and the request ends.
  Otherwise the request goes upstream as a MISS (this request fills the entry) or a
  STALE (this request revalidates it), or uncached (lock timeout, predictor).
* :func:`upstream_request` when the request head goes upstream: HEAD as GET, the
  client's conditionals and Range removed, a stale entry's validators added.
* :func:`admit` when the upstream's response head arrives (after
  ``upstream_response_filter``): a 304 revalidates the stale entry and the stored
  body is served; a 5xx under stale-if-error serves the stale entry; otherwise
  ``response_cache_filter`` decides and a cacheable response is streamed to the
  client through :class:`FillExchange`, which writes every chunk into the cache as it
  arrives, so readers waiting on the lock stream it too; a client that asked for a
  Range gets it sliced from the fill (:class:`RangeFillExchange`), as from a hit.
* :func:`on_error` when the request failed: stale-if-error, else caching is
  disabled (the write lock is released so a waiting reader takes over).

A fill completes even when its client leaves (:func:`finish_fill`); a fill whose
upstream fails is abandoned, so its readers see the failure and nothing truncated is
stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, Optional

from ..cache import (CacheMeta, CachePhase, LockStatus, NoCacheReason, RangeKind, apply_range_headers,
                     default_cache_key, merge_304_header, multipart_head_and_parts, not_modified,
                     range_request, to_304, upstream_request_for_cache)
from ..cache.conditional import wants_whole
from ..cache.http_cache import HttpCache
from ..cache.meta import ACCEPT_RANGES
from ..cache.storage import LOOKUP_PENDING, CacheHit, FillAbandoned, HitHandler, StorageError
from ..errors import Error, ErrorSource, ErrorType
from ..protocols.http.compression import response_coding
from ..protocols.http.header import HeaderMap, RequestHeader, ResponseHeader
from ..protocols.http.small_response import NO_STORE, small_response_header
from .proxy_trait import HOOKS, ForcedFreshness, PurgeStatus

if TYPE_CHECKING:
    from .engine import HttpProxyEngine
    from .session import Session

log = logging.getLogger("propylon.proxy")

__all__ = ["run", "serve", "upstream_request", "admit", "on_error", "FillExchange"]

_AT = {name: i for i, name in enumerate(HOOKS)}
REQ_CACHE = _AT["request_cache_filter"]
KEY = _AT["cache_key_callback"]
IS_PURGE = _AT["is_purge"]
PURGE_RESPONSE = _AT["purge_response_filter"]
VARY = _AT["cache_vary_filter"]
HIT_FILTER = _AT["cache_hit_filter"]
MISS = _AT["cache_miss"]
SERVE_STALE = _AT["should_serve_stale"]
NOT_MODIFIED = _AT["cache_not_modified_filter"]
RANGE = _AT["range_header_filter"]
RESP_CACHE = _AT["response_cache_filter"]
RESPONSE = _AT["response_filter"]
BODY = _AT["response_body_filter"]
del _AT

# Read off the enum once: ``CachePhase.X`` goes through its Python metaclass each time.
_UNINIT = CachePhase.UNINIT
#: Lookups and lock waits one request may go through before it goes upstream
#: uncached (each wait is bounded by the lock's timeouts; this bounds the loop).
MAX_LOOKUPS = 8
_BOUNDARY_BYTES = 12
_UPSTREAM_304_ON_MISS = NoCacheReason.custom("304 on miss")
_NOT_GET_OR_HEAD = NoCacheReason.custom("method not cacheable")
_UPGRADED = NoCacheReason.custom("upgraded")


# --- the request side -------------------------------------------------------------------
async def run(engine: "HttpProxyEngine", session: "Session", ctx: Any) -> bool:
    """The cache stage before ``proxy_upstream_filter``; True when the response was
    sent (hit, purge), False to go upstream."""
    hooks = engine.hooks
    if isinstance(session.downstream, RefreshDownstream):
        session.http_cache = session.downstream.cache  # SWR refresh: already STALE, holding the lock
        return False
    h = hooks[REQ_CACHE]
    if h is not None:
        try:
            h(session, ctx)
        except Exception as exc:  # Pingora: an error here is only logged
            log.warning("request_cache_filter failed: %s, %s", exc, engine.summary(session, ctx))
    cache = session.http_cache
    if cache is None:
        # The filter left the cache alone (a proxy caching some requests only): with
        # no purge to consider, the request goes on as if the proxy never cached,
        # without a cache state for the later steps to look at.
        if hooks[IS_PURGE] is None:
            return False
        cache = session.cache
    if cache.phase() is _UNINIT:
        h = hooks[KEY]
        try:
            key = h(session, ctx) if h is not None else default_cache_key(session.req_header)
            cache.set_cache_key(key)
        except Exception as exc:
            log.warning("cache_key_callback failed: %s, %s", exc, engine.summary(session, ctx))
            cache.disable(NoCacheReason.STORAGE_ERROR)
    h = hooks[IS_PURGE]
    if h is not None and h(session, ctx):
        await _purge(engine, session, ctx)
        return True
    if not cache.enabled():
        return False
    if session.req_header.method_bytes not in (b"GET", b"HEAD"):
        # The default key ignores the method: only GET and HEAD share an entry.
        cache.disable(_NOT_GET_OR_HEAD)
        return False
    return await _lookup(engine, session, ctx, cache)


async def _lookup(engine: "HttpProxyEngine", session: "Session", ctx: Any, cache: HttpCache) -> bool:
    hooks = engine.hooks
    req = session.req_header
    vary = hooks[VARY]
    vary_filter = (lambda meta, headers: vary(meta, ctx, req)) if vary is not None else None
    for _ in range(MAX_LOOKUPS):
        try:
            hit = cache.cache_lookup_now(req.headers, vary_filter)
            if hit is LOOKUP_PENDING:
                hit = await cache.cache_lookup(req.headers, vary_filter)
        except StorageError as exc:
            log.warning("cache lookup failed: %s, %s", exc, engine.summary(session, ctx))
            cache.disable(NoCacheReason.STORAGE_ERROR)
            return False
        if hit is not None:
            fresh = hit.meta.is_fresh()
            h = hooks[HIT_FILTER]
            if h is not None:
                forced = await h(session, hit.meta, hit.body, fresh, ctx)
                if forced is ForcedFreshness.FORCE_MISS:
                    hit = None
                elif forced is not None:
                    fresh = forced is ForcedFreshness.FORCE_FRESH
        if hit is not None:
            cache.cache_found(hit, fresh)
            if fresh:
                w = _answer(engine, session, ctx, hit)  # the common hit costs no coroutine
                if w is not None:
                    await w
                return True
            # Stale: one request revalidates; the others wait for it, or get the
            # stale copy at once under stale-while-revalidate.
            swr = hit.meta.serve_stale_while_revalidate() and _should_serve_stale(engine, session, ctx, None)
            reader = cache.lock()
            if reader is None:
                # The writer refreshes in the background; without a cache lock there
                # is no writer, and the one refresh per key is kept by _REFRESHES.
                if swr and (cache.is_writer() or not cache.has_lock()):
                    _spawn_refresh(engine, session, cache)
                    cache.set_stale_updating()
                    await serve(engine, session, ctx, hit)
                    return True
                return False  # this request revalidates (phase STALE)
            if swr:
                cache.set_stale_updating()
                await serve(engine, session, ctx, hit)
                return True
        else:
            reader = cache.lock()
            if reader is None:
                h = hooks[MISS]
                if h is not None:
                    h(session, ctx)
                else:
                    cache.cache_miss()
                return False
        await cache.wait_lock(reader)
        if not cache.enabled():
            return False  # lock timeout or give-up: upstream, uncached
    cache.disable(NoCacheReason.CACHE_LOCK_GIVE_UP)
    return False


def _should_serve_stale(engine: "HttpProxyEngine", session: "Session", ctx: Any, error: Optional[Error]) -> bool:
    h = engine.hooks[SERVE_STALE]
    if h is None:
        return error is not None and error.esource is ErrorSource.UPSTREAM
    return bool(h(session, ctx, error))


async def _purge(engine: "HttpProxyEngine", session: "Session", ctx: Any) -> None:
    """PURGE: 200 when something was removed, 404 when not, 405 when the request
    does not use the cache, 500 when the storage failed. Header only; the
    connection stays usable."""
    cache = session.cache
    if not cache.enabled():
        status = PurgeStatus.NOT_ENABLED
    else:
        try:
            status = PurgeStatus.PURGED if await cache.storage.purge(cache.cache_key()) else PurgeStatus.NOT_FOUND
        except StorageError as exc:
            log.error("purge failed: %s, %s", exc, engine.summary(session, ctx))
            status = PurgeStatus.ERROR
    resp = small_response_header(status.value, extra=NO_STORE)
    h = engine.hooks[PURGE_RESPONSE]
    if h is not None:
        try:
            h(session, ctx, status, resp)
        except Exception as exc:
            log.error("purge_response_filter failed: %s, %s", exc, engine.summary(session, ctx))
            resp = small_response_header(500, extra=NO_STORE)
    ds = session.downstream
    ds.write_header(resp, end_of_stream=True)
    await ds.drain()


def _spawn_refresh(engine: "HttpProxyEngine", session: "Session", cache: HttpCache) -> None:
    """Stale-while-revalidate: a background request, holding this request's write
    lock if there is a cache lock, fetches the new copy (with the stale entry's
    validators) while the client is served the stale one. At most one refresh per
    key runs in this process: a stale hit that finds one running only serves."""
    key = (id(cache.storage), cache.cache_key().combined())
    if key in _REFRESHES:
        return
    refresh = cache.hand_over_refresh()
    ds = RefreshDownstream(session.req_header.copy(), refresh)
    task = asyncio.get_running_loop().create_task(engine.handle(ds))
    _REFRESHES[key] = task
    task.add_done_callback(lambda _: _REFRESHES.pop(key, None))


# Background refreshes in flight by (storage, combined key), kept referenced until done.
_REFRESHES: dict = {}


# --- serving from the cache --------------------------------------------------------------
async def serve(engine: "HttpProxyEngine", session: "Session", ctx: Any, hit: CacheHit) -> None:
    """Answer from ``hit``: Age, the client's conditionals (304), HEAD, Range (206,
    multipart, 416), then ``response_filter`` and the body. A fill in progress streams
    as it arrives; if it is abandoned after the head went out, the client's
    connection is closed (it never takes a truncated body for a whole one)."""
    w = _answer(engine, session, ctx, hit)
    if w is not None:
        await w


def _answer(engine: "HttpProxyEngine", session: "Session", ctx: Any, hit: CacheHit):
    """:func:`serve` without a coroutine of its own for the common hit, which is sent
    at once: None when the answer is complete, else the awaitable that completes it."""
    ds = session.downstream
    if isinstance(ds, RefreshDownstream):
        return None  # a background refresh answers nobody
    hooks = engine.hooks
    meta = hit.meta
    body: Optional[HitHandler] = hit.body
    if (body is not None and hit.complete and hooks[NOT_MODIFIED] is None and hooks[RANGE] is None
            and hooks[RESPONSE] is None and hooks[BODY] is None and session.compression is None
            and not ds.is_head and meta.header.status not in (204, 304) and body.can_seek()
            and wants_whole(session.req_header)):
        data = body.read_now()
        if data is not None:
            # All of a small body in memory, sent whole (what the steps of _serve come
            # to for it) under the entry's stored head.
            resp, h1_head = meta.whole_hit_head(len(data))
            ds.write_head_and_body(resp, data, h1_head)
            if ds.write_blocked:
                return _end_slowly(ds)
            if ds.closed:
                raise Error.explain(ErrorType.WRITE_ERROR, "client went away").into_down()
            ds.finish()
            return _end_slowly(ds) if ds.write_blocked else None
    return _serve(engine, session, ctx, hit)


async def _end_slowly(ds) -> None:
    """The end of a whole hit for a client that reads slowly: wait for it, finishing
    the response in between if the wait came first."""
    finished = ds.finished
    await ds.drain()
    if not finished:
        ds.finish()
        if ds.write_blocked:
            await ds.drain()


async def _serve(engine: "HttpProxyEngine", session: "Session", ctx: Any, hit: CacheHit) -> None:
    """The steps of :func:`serve` for any hit."""
    hooks = engine.hooks
    ds = session.downstream
    meta = hit.meta
    body: Optional[HitHandler] = hit.body
    resp = meta.hit_head()
    parts = closing = None
    h = hooks[NOT_MODIFIED]
    if (h(session, resp, ctx) if h is not None else not_modified(session.req_header, resp)):
        resp = to_304(resp)
        body = None
    elif body is not None and hit.complete and body.can_seek():
        h = hooks[RANGE]
        if h is not None:
            rr = h(session, resp, ctx)
        elif session.req_header.headers.get_bytes(b"range") is None:
            rr = None  # the common case, known without building a RangeRequest
        else:
            rr = range_request(session.req_header, resp)
        if rr is None or rr.kind is RangeKind.NONE:
            if not meta.has_accept_ranges():
                resp.headers.fields.append(ACCEPT_RANGES)
        else:
            length = meta.body_len if meta.body_len is not None else _content_length(resp)
            if length is not None:
                parts, closing = _apply_range(resp, rr, length)
                if rr.kind is RangeKind.SINGLE:
                    body.seek(*rr.ranges[0])
                elif rr.kind is RangeKind.INVALID:
                    body = None
    h = hooks[RESPONSE]
    if h is not None:
        await h(session, resp, ctx)
    if ds.is_head or body is None or resp.status in (204, 304):
        if hit.body is not None:
            await hit.body.aclose()
        ds.write_header(resp, end_of_stream=True)
        await ds.drain()
        return
    body_filter = hooks[BODY]
    if parts is None and body_filter is None and session.compression is None:
        data = body.read_now()
        if data is not None:
            # A small body in memory: head and body leave in one write, no awaits.
            ds.write_header(resp, hold=True)
            ds.write_body(data)
            if ds.write_blocked:
                await ds.drain()
            elif ds.closed:
                raise Error.explain(ErrorType.WRITE_ERROR, "client went away").into_down()
            ds.finish()
            if ds.write_blocked:
                await ds.drain()
            return
    handler = body
    if session.compression is not None:
        # As for a response from the upstream: the stored body is coded for this
        # client (or decoded when it cannot take the stored coding).
        ds, body = response_coding(session.compression, session.req_header, resp, ds, body,
                                   body_filter is not None)
    ds.write_header(resp, hold=True)
    try:
        if parts is not None:
            for part_head, start, end in parts:
                await _send(ds, session, ctx, body_filter, part_head, False)
                handler.seek(start, end)
                await _send_all(ds, session, ctx, body_filter, body, False)
            await _send(ds, session, ctx, body_filter, closing, True)
        elif body_filter is not None:
            await _send_all(ds, session, ctx, body_filter, body, True)
        else:
            while True:
                data = await body.read_body()
                if data is None:
                    break
                ds.write_body(data)
                if ds.write_blocked:
                    await ds.drain()
                elif ds.closed:
                    raise Error.explain(ErrorType.WRITE_ERROR, "client went away").into_down()
    except FillAbandoned as exc:
        session.downstream.keepalive = False
        raise Error.because(ErrorType.READ_ERROR, "the cache fill this response streamed from failed",
                            exc).into_up() from None
    finally:
        await handler.aclose()
    ds.finish()
    if ds.write_blocked:
        await ds.drain()


def _apply_range(resp: ResponseHeader, rr, length: int):
    """Turn ``resp`` into the answer to a satisfiable or unsatisfiable Range (not
    NONE). Returns the multipart pieces (part heads and ranges, closing delimiter)
    or (None, None)."""
    if rr.kind is RangeKind.MULTI:
        boundary = os.urandom(_BOUNDARY_BYTES).hex().encode()
        parts, closing, total = multipart_head_and_parts(
            rr, length, resp.headers.get_bytes(b"content-type"), boundary)
        resp.headers.remove(b"content-type")
        resp.headers.remove(b"content-length")
        apply_range_headers(resp, rr, length, boundary)
        resp.headers.insert(b"Content-Length", b"%d" % total)
        return parts, closing
    resp.headers.remove(b"content-length")
    apply_range_headers(resp, rr, length)
    return None, None


async def _send_all(ds, session, ctx, body_filter, body: HitHandler, last: bool) -> None:
    while True:
        data = await body.read_body()
        if data is None:
            if last and body_filter is not None:
                await _send(ds, session, ctx, body_filter, None, True)
            return
        await _send(ds, session, ctx, body_filter, data, False)


async def _send(ds, session, ctx, body_filter, data: Optional[bytes], eos: bool) -> None:
    if body_filter is not None:
        r = body_filter(session, data, eos, ctx)
        if r is not None:
            data = r
    if data:
        ds.write_body(data)
        if ds.write_blocked:
            await ds.drain()
        elif ds.closed:
            raise Error.explain(ErrorType.WRITE_ERROR, "client went away").into_down()


def _content_length(resp: ResponseHeader) -> Optional[int]:
    cl = resp.headers.get_bytes(b"content-length")
    return int(cl) if cl is not None and cl.isdigit() else None


# --- the upstream side -----------------------------------------------------------------------
def upstream_request(session: "Session", up_req: RequestHeader) -> None:
    """What a cache sends upstream (``up_req`` is the engine's copy)."""
    cache = session.http_cache
    if cache is None or not cache.enabled():
        return
    phase = cache.phase()
    stale = cache.cache_meta() if phase in (CachePhase.STALE, CachePhase.STALE_UPDATING) else None
    upstream_request_for_cache(up_req, stale)


async def admit(engine: "HttpProxyEngine", session: "Session", ctx: Any, resp: ResponseHeader, conn):
    """The cache's part when the upstream's response head arrived (after
    ``upstream_response_filter``). Returns the exchange to relay the body from:
    ``conn`` itself, a :class:`FillExchange` around it, or None when the response was
    served from the cache here (a 304 revalidation, stale-if-error)."""
    cache = session.http_cache
    if not cache.enabled():
        return conn
    phase = cache.phase()
    status = resp.status
    if phase is CachePhase.STALE or phase is CachePhase.STALE_UPDATING:
        hit = cache.cache_hit()
        if status == 304:
            merged = merge_304_header(hit.meta.header, resp)
            verdict = _cacheable(engine, session, ctx, merged)
            if isinstance(verdict, CacheMeta):
                await cache.revalidate_cache_meta(verdict)
            else:
                cache.revalidate_uncacheable(verdict)
                cache.serve_stale()
            await serve(engine, session, ctx, cache.cache_hit())
            return None
        if status >= 500 and hit.meta.serve_stale_if_error():
            err = Error.http_status(status, "the upstream answered %d" % status)
            err.esource = ErrorSource.UPSTREAM
            if _should_serve_stale(engine, session, ctx, err):
                conn.mark_no_reuse()  # its body is left unread
                cache.release_write_lock(LockStatus.TRANSIENT_ERROR)
                cache.serve_stale()
                await serve(engine, session, ctx, hit)
                return None
    elif phase is not CachePhase.MISS:
        return conn
    if status == 304:
        cache.disable(_UPSTREAM_304_ON_MISS)
        return conn
    if status == 101:
        cache.disable(_UPGRADED)  # a tunnel, not a response body
        return conn
    verdict = _cacheable(engine, session, ctx, resp)
    if not isinstance(verdict, CacheMeta):
        cache.disable(verdict)
        return conn
    if resp.headers.get_bytes(b"vary") is not None:
        h = engine.hooks[VARY]
        req = session.req_header
        variance = h(verdict, ctx, req) if h is not None else engine.proxy.cache_vary_filter(verdict, ctx, req)
        cache.set_variance(variance)
    try:
        if not await cache.set_miss_handler(verdict, _content_length(resp)):
            return conn
    except StorageError as exc:
        log.warning("cache fill could not start: %s, %s", exc, engine.summary(session, ctx))
        cache.disable(NoCacheReason.STORAGE_ERROR)
        return conn
    # The fill completes even if the client leaves: the client's loss must not
    # stop the upstream read.
    session.downstream.on_lost = None
    if session.compression is None:
        # The client's Range is answered from the body as it fills (the upstream was
        # asked for all of it), as a hit would be.
        length = _content_length(resp)
        if length is not None:
            h = engine.hooks[RANGE]
            rr = h(session, resp, ctx) if h is not None else range_request(session.req_header, resp)
            if rr.kind is not RangeKind.NONE:
                parts, closing = _apply_range(resp, rr, length)
                if parts is None:
                    parts = [(b"", start, end) for start, end in rr.ranges]  # none for a 416
                return RangeFillExchange(conn, cache, parts, closing)
    return FillExchange(conn, cache)


def _cacheable(engine: "HttpProxyEngine", session: "Session", ctx: Any, resp: ResponseHeader):
    h = engine.hooks[RESP_CACHE]
    if h is None:
        return engine.proxy.response_cache_filter(session, resp, ctx)
    return h(session, resp, ctx)


async def finish_fill(session: "Session", conn) -> None:
    """The client left during a fill: read the rest of the upstream body (``conn``,
    the upstream exchange) into the cache, so the next request is a hit with the
    whole body. An upstream failure abandons the fill instead."""
    cache = session.http_cache
    if not cache.is_filling():
        return
    fill = FillExchange(conn, cache)
    try:
        while await fill.read_body() is not None:
            pass
    except Error as e:
        log.warning("cache fill abandoned after its client left: %s", e)


async def on_error(engine: "HttpProxyEngine", session: "Session", ctx: Any, e: Error) -> bool:
    """The request failed. Serve the stale entry when stale-if-error allows it (True:
    answered); otherwise stop caching, releasing the write lock."""
    cache = session.http_cache
    if cache is None or not cache.enabled():
        return False
    phase = cache.phase()
    if (phase is CachePhase.STALE or phase is CachePhase.STALE_UPDATING) \
            and session.downstream.written_head is None and not isinstance(session.downstream, RefreshDownstream):
        hit = cache.cache_hit()
        if hit.meta.serve_stale_if_error() and _should_serve_stale(engine, session, ctx, e):
            cache.release_write_lock(LockStatus.TRANSIENT_ERROR)
            cache.serve_stale()
            try:
                await serve(engine, session, ctx, hit)
            except Error:
                return False
            return True
    if e.esource is ErrorSource.DOWNSTREAM:
        # The client left: a fill it started went on without it (finish_fill); the
        # phase stays what it was for the logs.
        cache.release_write_lock(LockStatus.TRANSIENT_ERROR)
        return False
    cache.disable(NoCacheReason.UPSTREAM_ERROR if e.esource is ErrorSource.UPSTREAM
                  else NoCacheReason.INTERNAL_ERROR)
    return False


class FillExchange:
    """The upstream exchange of a cacheable response, seen through the cache: each
    body piece read is written into the fill first; the end of the body finishes the
    fill (the entry is stored); an upstream failure abandons it. Everything else is
    the wrapped exchange's."""

    __slots__ = ("conn", "cache")

    def __init__(self, conn, cache: HttpCache) -> None:
        self.conn = conn
        self.cache = cache

    def __getattr__(self, name: str):
        return getattr(self.conn, name)

    @property
    def trailers(self) -> Optional[HeaderMap]:
        return self.conn.trailers

    def take_body(self) -> Optional[bytes]:
        # Everything goes through read_body, which also feeds the cache.
        return b""

    def body_ready(self) -> bool:
        return False

    def at_end(self) -> bool:
        return self.conn.at_end()

    async def read_body(self) -> Optional[bytes]:
        conn = self.conn
        cache = self.cache
        try:
            data = conn.take_body()
            if data == b"":
                data = await conn.read_body()
        except BaseException:
            cache.disable(NoCacheReason.UPSTREAM_ERROR)  # nothing partial is stored
            raise
        if data is None:
            await cache.finish_miss_handler()
            return None
        if cache.is_filling():
            await cache.write_body(data)
            if conn.at_end():
                await cache.finish_miss_handler()
        return data


class RangeFillExchange(FillExchange):
    """A fill whose client asked for ranges of it: the whole body goes into the cache,
    the client gets only the ``parts`` (a head to write before each, then bytes
    ``start..end`` inclusive) and after them ``closing`` (multipart), as the body
    arrives. No parts: the client gets no body (416)."""

    __slots__ = ("parts", "closing", "pos", "ended")

    def __init__(self, conn, cache: HttpCache, parts: list, closing: Optional[bytes]) -> None:
        super().__init__(conn, cache)
        self.parts = parts
        self.closing = closing
        self.pos = 0
        self.ended = False

    async def read_body(self) -> Optional[bytes]:
        if self.ended:
            return None
        data = await FillExchange.read_body(self)
        if data is None:
            self.ended = True
            return self.closing
        start = self.pos
        end = start + len(data)
        self.pos = end
        out = []
        for head, first, last in self.parts:
            if last < start or first >= end:
                continue
            if first >= start and head:
                out.append(head)  # this part begins in this piece
            out.append(data[max(first, start) - start:min(last + 1, end) - start])
        return b"".join(out)

    def at_end(self) -> bool:
        # A multipart answer still has its closing delimiter to give after the body.
        return self.ended or (self.closing is None and self.conn.at_end())


class RefreshDownstream:
    """The client side of a stale-while-revalidate background refresh: the request is
    the stale request's head, the answer goes nowhere (it only fills the cache)."""

    keepalive = False
    has_body = False
    body_received = True
    body_error = None
    trailers = None
    expect_continue = False
    upgrade = False
    requests_before = 0
    write_timeout = None
    min_send_rate = None
    close_on_early_response = True
    digest = None
    shutting_down = False
    closed = False
    write_blocked = False

    def __init__(self, req: RequestHeader, cache: HttpCache) -> None:
        self.req = req
        self.cache = cache
        self.is_head = False
        self.written_head: Optional[ResponseHeader] = None
        self.finished = False
        self.on_lost = None

    async def read_body(self) -> Optional[bytes]:
        return None

    def is_body_done(self) -> bool:
        return True

    def write_interim(self, resp: ResponseHeader) -> None:
        pass

    def write_header(self, resp: ResponseHeader, end_of_stream: bool = False, hold: bool = False) -> None:
        self.written_head = resp
        self.finished = end_of_stream

    def write_body(self, data: bytes) -> None:
        pass

    def write_head_and_body(self, resp: ResponseHeader, body: bytes, h1_head: Optional[bytes] = None) -> None:
        self.write_header(resp)

    def finish(self, trailers: Optional[HeaderMap] = None) -> None:
        self.finished = True

    async def drain(self) -> None:
        pass

    def into_tunnel(self, on_data, on_eof, on_writable):
        raise Error.explain(ErrorType.INTERNAL_ERROR, "a cache refresh has no tunnel").into_in()
