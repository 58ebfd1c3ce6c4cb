"""The request engine: drives one downstream request through the ``ProxyHttp`` hooks.

``HttpProxyEngine.handle`` runs in the connection's task, once per request, and
returns whether the client connection may carry another request. The order of the
hooks, the retry loop and the error paths follow Pingora's ``process_request``
(see ``docs/phases.md``).

Hooks the proxy class does not override are resolved to ``None`` once, at
construction (one tuple in the order of ``proxy_trait.HOOKS``), and skipped; the
defaults that do something (``error_while_proxy``, ``fail_to_proxy``,
``request_summary``) run inline here unless overridden.

The engine speaks to the two sides only through ``protocols/http/interfaces.py``:
it knows no HTTP version.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any, Optional

from ..errors import Error, ErrorSource, ErrorType
from ..protocols.http.compression import CompressionOptions, response_coding
from ..protocols.http.header import ResponseHeader
from ..protocols.http.interfaces import DownstreamSession, UpstreamExchange
from ..connectors.http import HttpConnector
from ..upstreams.peer import HttpPeer
from .proxy_trait import (HOOKS, FailToProxy, ProxyHttp, default_fail_to_proxy, default_request_summary,
                          resolve_hooks, timed, timed_hooks)
from . import cache_stage
from ..repeats import RepeatedErrors
from .session import Session
from .tunnel import tunnel

log = logging.getLogger("propylon.proxy")

# Read once: on Python 3.11 each read of a member through its Enum class calls the
# class's ``__getattr__`` hook, and these are read for every failed request.
_UPSTREAM = ErrorSource.UPSTREAM
_DOWNSTREAM = ErrorSource.DOWNSTREAM

__all__ = ["HttpProxyEngine"]

# Slots of the resolved hooks (HttpProxyEngine.hooks), from the order of HOOKS.
_AT = {name: i for i, name in enumerate(HOOKS)}
EARLY = _AT["early_request_filter"]
REQUEST = _AT["request_filter"]
REQ_CACHE = _AT["request_cache_filter"]
IS_PURGE = _AT["is_purge"]
PROXY_UPSTREAM = _AT["proxy_upstream_filter"]
FAIL_CONNECT = _AT["fail_to_connect"]
CONNECTED = _AT["connected_to_upstream"]
UP_REQUEST = _AT["upstream_request_filter"]
REQ_BODY = _AT["request_body_filter"]
UP_RESPONSE = _AT["upstream_response_filter"]
RESPONSE = _AT["response_filter"]
UP_BODY = _AT["upstream_response_body_filter"]
BODY = _AT["response_body_filter"]
UP_TRAILER = _AT["upstream_response_trailer_filter"]
TRAILER = _AT["response_trailer_filter"]
ERROR_WHILE = _AT["error_while_proxy"]
FAIL_PROXY = _AT["fail_to_proxy"]
SUPPRESS = _AT["suppress_error_log"]
SUMMARY = _AT["request_summary"]
LOGGING = _AT["logging"]
del _AT


class _BodySender:
    """Streams the request body upstream while the response is being read."""

    __slots__ = ("task", "error", "done")

    def __init__(self) -> None:
        self.task: Optional[asyncio.Task] = None
        self.error: Optional[BaseException] = None
        self.done = False


class HttpProxyEngine:
    """Runs requests through a ``ProxyHttp``. One engine per service per process."""

    def __init__(self, proxy: ProxyHttp, max_retries: int = 16, pool_size: int = 128,
                 ca_file: Optional[str] = None, bind_to_v4: tuple = (), bind_to_v6: tuple = (),
                 compression: Optional[CompressionOptions] = None, observer: Any = None) -> None:
        self.proxy = proxy
        self.compression = compression if compression is not None and compression.active else None
        self.max_retries = max(1, max_retries)
        self.connector = HttpConnector(pool_size, ca_file, bind_to_v4, bind_to_v6)
        self.hooks = hooks = resolve_hooks(proxy)
        self.new_ctx = proxy.new_ctx if type(proxy).new_ctx is not ProxyHttp.new_ctx else None
        self.upstream_peer = proxy.upstream_peer
        # The cache stage runs only for a proxy that may enable the cache or purge.
        self.caching = hooks[REQ_CACHE] is not None or hooks[IS_PURGE] is not None
        self.before_upstream = self.new_ctx is not None or self.caching or any(
            hooks[i] is not None for i in (EARLY, REQUEST, PROXY_UPSTREAM))
        self.body_filtered = hooks[UP_BODY] is not None or hooks[BODY] is not None
        # Observability (propylon.metrics): ``observer.request_start(session)`` gives a
        # record the engine tells about each attempt and the end. None: nothing is
        # recorded or called.
        self.observer = observer
        # The observer may pick a request for a trace (see ``traced``).
        self.tracing = bool(getattr(observer, "tracing", False))
        self.repeats = RepeatedErrors()

    def summary(self, session: Session, ctx: Any) -> str:
        """The request's line in logs: the proxy's ``request_summary``, or the default."""
        h = self.hooks[SUMMARY]
        if h is None:
            return default_request_summary(session)
        try:
            return h(session, ctx)
        except Exception:  # a bug in the hook must not hide the line it was for
            log.exception("request_summary failed")
            return default_request_summary(session)

    def traced(self, report: Any) -> "HttpProxyEngine":
        """This engine for one traced request: the same connector, settings and
        observer, with the proxy's hooks (and ``new_ctx``, ``upstream_peer``) timed,
        each call told to ``report(name, start, end)``. The hooks not overridden
        stay out, as here: a request that is not traced never sees this."""
        other = copy.copy(self)  # every setting and the shared state, whatever fields come later
        other.hooks = timed_hooks(self.hooks, report)
        other.new_ctx = timed("new_ctx", self.new_ctx, False, report) if self.new_ctx is not None else None
        other.upstream_peer = timed("upstream_peer", self.upstream_peer, True, report)
        other.tracing = False
        return other

    # --- one request ------------------------------------------------------------------
    async def handle(self, ds: DownstreamSession, session: Optional[Session] = None) -> bool:
        """Run one request from ``ds``; whether the client connection may carry
        another. (``session``: a traced request's, already started by ``handle``
        of the engine this one was made from by ``traced``.)"""
        if session is None:
            session = Session(ds, self.compression)
            if self.observer is not None:
                rec = session.observation = self.observer.request_start(session)
                if self.tracing and rec.steps is not None:
                    return await self.traced(rec.hook_ran).handle(ds, session)
        ctx = None
        hooks = self.hooks
        if self.before_upstream:
            try:
                if self.new_ctx is not None:
                    ctx = self.new_ctx()
                h = hooks[EARLY]
                if h is not None:
                    session.phase = "early_request_filter"
                    await h(session, ctx)
                h = hooks[REQUEST]
                if h is not None:
                    session.phase = "request_filter"
                    if await h(session, ctx):
                        w = self._ended(session, None, ctx)
                        if w is not None:
                            await w
                        return self._reusable(ds)
                if self.caching:
                    session.phase = "cache"
                    if await cache_stage.run(self, session, ctx):
                        w = self._ended(session, None, ctx)
                        if w is not None:
                            await w
                        return self._reusable(ds)
                h = hooks[PROXY_UPSTREAM]
                if h is not None:
                    session.phase = "proxy_upstream_filter"
                    if not await h(session, ctx):
                        await session.respond_error(502, keepalive=True)
                        w = self._ended(session, None, ctx)
                        if w is not None:
                            await w
                        return self._reusable(ds)
            except Error as e:
                return await self._handle_error(session, e, ctx, tries=0)
            except Exception as exc:  # a bug in a hook: answer 500, log it with its traceback
                log.exception("hook failed on %s", self.summary(session, ctx))
                return await self._handle_error(session, _internal(exc), ctx, tries=0)

        if ds.body_error is not None:
            # The body was already found malformed: nothing of it goes upstream.
            session.phase = "request_body"
            return await self._handle_error(session, ds.body_error, ctx, tries=0)
        tries = 0
        error: Optional[Error] = None
        while tries < self.max_retries:
            tries += 1
            try:
                await self._proxy_once(session, ctx, tries > 1)
                error = None
                break
            except Error as e:
                error = e
            except Exception as exc:
                log.exception("hook failed on %s", self.summary(session, ctx))
                error = _internal(exc)
                break
            if ds.written_head is not None or not _retryable(error):
                break
            if session.observation is not None:
                session.observation.upstream_done(error)
            log.warning("Fail to proxy: %s, tries: %d, phase: %s, peer: %s, retry: true, %s", error, tries,
                        session.phase, _peer_text(session.peer),
                        self.summary(session, ctx))
        if error is not None:
            if session.http_cache is not None and await cache_stage.on_error(self, session, ctx, error):
                w = self._ended(session, None, ctx)
                if w is not None:
                    await w
                return self._reusable(ds)
            return await self._handle_error(session, error, ctx, tries=tries)
        w = self._ended(session, None, ctx)
        if w is not None:
            await w
        return self._reusable(ds)

    async def _proxy_once(self, session: Session, ctx: Any, retry: bool) -> None:
        """One attempt: pick the peer, get a connection, exchange the request
        (``retry``: an earlier attempt may have kept some body to send again)."""
        hooks = self.hooks
        session.phase = "upstream_peer"
        peer = await self.upstream_peer(session, ctx)
        if not isinstance(peer, HttpPeer):
            raise Error.explain(ErrorType.INTERNAL_ERROR,
                                f"upstream_peer returned {type(peer).__name__}, not HttpPeer").into_in()
        if session.downstream.closed:  # the client left (an HTTP/2 reset...): nothing goes upstream
            raise Error.explain(ErrorType.CONNECTION_CLOSED, "client went away").into_down()
        session.peer = peer
        if session.observation is not None:
            session.observation.upstream_attempt(peer)
        conn = self.connector.reuse(peer)
        if conn is not None:
            reused = True
        else:
            session.phase = "connect"
            try:
                conn, reused = await self.connector.get(peer)
            except Error as e:
                e.esource = _UPSTREAM
                h = hooks[FAIL_CONNECT]
                if h is not None:
                    e = h(session, peer, ctx, e)
                    e.esource = _UPSTREAM
                raise e
        session.upstream_reused = reused
        session.phase = "upstream_request"
        if session.observation is not None:
            session.observation.upstream_connected(reused)
        ds = session.downstream
        try:
            h = hooks[CONNECTED]
            if h is not None:
                await h(session, reused, peer, conn.digest, ctx)
            retry_body = session.retry_body() if retry else None
            has_body = ds.has_body or retry_body is not None
            up_req = session.req_header
            h = hooks[UP_REQUEST]
            if (has_body or ds.expect_continue or h is not None or up_req.version != (1, 1)
                    or session.http_cache is not None):
                # The upstream gets its own copy when anything may change it; a
                # plain request goes out as received (hop-by-hop fields were set
                # aside by the downstream codec).
                up_req = up_req.copy()
                if ds.expect_continue:
                    up_req.headers.remove(b"expect")
                if session.http_cache is not None:
                    cache_stage.upstream_request(session, up_req)
                if h is not None:
                    await h(session, up_req, ctx)
            opts = peer.settings()
            conn.read_timeout = opts.read_timeout
            conn.write_timeout = opts.write_timeout
            conn.send_request_header(up_req, has_body, has_body and b"content-length" in up_req.headers)
            # A dead client must not leave us waiting on the origin.
            ds.on_lost = conn.client_gone
            try:
                if has_body or ds.upgrade:
                    await self._exchange_streaming(session, ctx, peer, conn, has_body, retry_body)
                else:
                    h = hooks[REQ_BODY]
                    if h is not None:
                        await h(session, None, True, ctx)
                    await self._relay_response(session, ctx, peer, conn, None)
            finally:
                ds.on_lost = None
        except Error as e:
            if session.http_cache is not None and e.esource is _DOWNSTREAM:
                await cache_stage.finish_fill(session, conn)  # the client left: the fill completes
            conn.abort()
            # I/O errors were tagged upstream where they happened; an error a hook
            # raised keeps its own source (unset → 500, as in Pingora).
            client_reused = reused and not session.retry_buffer_truncated
            h = hooks[ERROR_WHILE]
            if h is not None:
                e = h(peer, session, e, ctx, client_reused)
            else:
                e.context = f"{e.context}, Peer: {peer}" if e.context else f"Peer: {peer}"
                e.decide_reused(client_reused)
            raise e
        except BaseException:
            conn.abort()
            raise
        self.connector.release(peer, conn)

    async def _exchange_streaming(self, session: Session, ctx: Any, peer: HttpPeer,
                                  conn: UpstreamExchange, has_body: bool, retry_body: Optional[bytes]) -> None:
        """The exchange of a request with a body or of an upgrade.

        The body is sent by a task while the response is relayed (full duplex): an
        origin may answer before it read the whole body, and the rest still goes
        to it afterwards when the client connection is to serve another request
        (or the body is already here); a connection that closes after this answer
        is not drained (Pingora's ``close_on_response_before_downstream_finish``).
        An upgrade's body, if any, goes before the tunnel opens.
        """
        sender: Optional[_BodySender] = None
        try:
            if has_body:
                sender = _BodySender()
                sender.task = asyncio.get_running_loop().create_task(
                    self._send_body(session, ctx, conn, sender, retry_body))
            await self._relay_response(session, ctx, peer, conn, sender)
            ds = session.downstream
            if sender is not None and (ds.keepalive or ds.body_received):
                await self._sender_done(session, conn, sender)
        except Error as e:
            if sender is not None and sender.error is not None and isinstance(sender.error, Error):
                raise sender.error from None
            raise e
        finally:
            if sender is not None and sender.task is not None and not sender.task.done():
                sender.task.cancel()
                conn.mark_no_reuse()

    async def _sender_done(self, session: Session, conn: UpstreamExchange, sender: _BodySender) -> None:
        """Wait for the rest of the request body to reach the origin."""
        task = sender.task
        if task is not None and not task.done():
            await task
        err = sender.error
        if err is not None:
            ds = session.downstream
            if not ds.finished:
                raise err if isinstance(err, Error) else _internal(err)
            # The client already has its whole answer; only the two connections
            # suffer: neither is reused.
            ds.keepalive = False
            conn.mark_no_reuse()
        elif not sender.done:
            conn.mark_no_reuse()

    async def _send_body(self, session: Session, ctx: Any, conn: UpstreamExchange,
                         sender: _BodySender, retry_body: Optional[bytes]) -> None:
        ds = session.downstream
        filt = self.hooks[REQ_BODY]
        try:
            if retry_body is not None:
                data = retry_body
                if filt is not None:
                    r = await filt(session, data, ds.is_body_done(), ctx)
                    if r is not None:
                        data = r
                conn.write_body(data)
                await conn.drain()
            while True:
                data = await ds.read_body()
                eos = data is None or ds.is_body_done()
                if data is not None and not session.retry_buffer_truncated:
                    session.remember_body(data)
                if filt is not None:
                    r = await filt(session, data, eos, ctx)
                    if r is not None:
                        data = r
                if data:
                    conn.write_body(data)
                    await conn.drain()
                if eos:
                    break
            conn.finish_body(ds.trailers)
            sender.done = True
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            sender.error = exc if isinstance(exc, Error) else _internal(exc)
            if not session.downstream.finished:
                conn.fail(sender.error)

    async def _relay_response(self, session: Session, ctx: Any, peer: HttpPeer,
                              conn: UpstreamExchange, sender: Optional[_BodySender]) -> None:
        ds = session.downstream
        hooks = self.hooks
        session.phase = "upstream_response"
        resp = await conn.read_response_header()
        status = resp.status
        while status < 200 and status != 101:
            if status != 100 and ds.req.version >= (1, 1):
                ds.write_interim(resp)  # e.g. 103 Early Hints
            resp = await conn.read_response_header()
            status = resp.status
        if session.observation is not None:
            session.observation.upstream_response(resp)
        # Response heads arrive without hop-by-hop fields: the codecs keep them aside.
        h = hooks[UP_RESPONSE]
        if h is not None:
            await h(session, resp, ctx)
        if session.http_cache is not None:
            conn = await cache_stage.admit(self, session, ctx, resp, conn)
            if conn is None:
                return  # answered from the cache (304 revalidation, stale-if-error)
        h = hooks[RESPONSE]
        if h is not None:
            await h(session, resp, ctx)
        session.phase = "response_body"
        if status == 101:
            if not ds.upgrade:
                raise Error.explain(ErrorType.H1_ERROR, "101 to a request that asked no upgrade").into_up()
            if sender is not None:
                # The request's own body goes first; the tunnel carries what follows.
                await self._sender_done(session, conn, sender)
            ds.write_header(resp)
            await tunnel(ds, conn, peer.settings().read_timeout)
            return
        if session.compression is not None:
            ds, conn = response_coding(session.compression, session.req_header, resp, ds, conn,
                                       self.body_filtered)
        if not self.body_filtered:
            data = conn.take_body()  # b"": nothing yet; None: the body already ended
            if data is None and conn.trailers is None:
                # The response ended with its head (no body, e.g. 204, HEAD, or a gRPC
                # trailers-only answer): end the stream with the head too.
                ds.write_header(resp, end_of_stream=True)
                if ds.write_blocked:
                    await ds.drain()
                return
            # A head whose body (or end) is already here leaves with it, in one write.
            ds.write_header(resp, hold=data != b"")
            while data is not None:
                if not data:
                    data = await conn.read_body()
                    if data is None:
                        break
                if _write_down(ds, data):
                    await ds.drain()
                data = conn.take_body()
        else:
            await self._relay_filtered_body(session, ctx, ds, conn, resp)
        trailers = conn.trailers
        if trailers is not None:
            trailers = await self._filter_trailers(session, ctx, ds, trailers)
        ds.finish(trailers)
        if ds.write_blocked:
            await ds.drain()

    async def _filter_trailers(self, session: Session, ctx: Any, ds: DownstreamSession, trailers):
        """The trailer hooks; returns the trailers to send (None when
        ``response_trailer_filter`` turned them into a last body piece, written
        through ``ds``: the response's writer, compressing when the body is)."""
        hooks = self.hooks
        h = hooks[UP_TRAILER]
        if h is not None:
            h(session, trailers, ctx)
        h = hooks[TRAILER]
        if h is not None:
            try:
                data = await h(session, trailers, ctx)
            except Exception as exc:  # Pingora: logged, the trailers go out as they are
                log.error("response_trailer_filter failed: %s, %s", exc, self.summary(session, ctx))
                return trailers
            if data is not None:
                if data and _write_down(ds, data):
                    await ds.drain()
                return None
        return trailers

    async def _relay_filtered_body(self, session: Session, ctx: Any, ds: DownstreamSession,
                                   conn: UpstreamExchange, resp: ResponseHeader) -> None:
        """The response body through the body filters the proxy defines (``ds`` is
        the response's writer: the session's, or one compressing for it)."""
        up_body = self.hooks[UP_BODY]
        body_filt = self.hooks[BODY]
        ds.write_header(resp, hold=conn.body_ready())
        while True:
            data = await conn.read_body()
            eos = data is None or conn.at_end()
            if up_body is not None:
                r = up_body(session, data, eos, ctx)
                if r is not None:
                    data = r
            if body_filt is not None:
                r = body_filt(session, data, eos, ctx)
                if r is not None:
                    data = r
            if data and _write_down(ds, data):
                await ds.drain()
            if eos:
                break

    # --- endings ------------------------------------------------------------------------------
    def _reusable(self, ds: DownstreamSession) -> bool:
        if not ds.keepalive or ds.closed:
            return False
        if ds.written_head is not None and not ds.finished:
            return False
        return ds.is_body_done()

    async def _handle_error(self, session: Session, e: Error, ctx: Any, tries: int) -> bool:
        ds = session.downstream
        hooks = self.hooks
        try:
            h = hooks[FAIL_PROXY]
            # The default keeps the client connection when that is safe (nginx does;
            # Pingora closes it after every error response): a client of a dead
            # origin is not made to reconnect for each request.
            res = await (h(session, e, ctx) if h is not None else default_fail_to_proxy(session, e))
        except Exception:
            log.exception("fail_to_proxy failed on %s", self.summary(session, ctx))
            res = FailToProxy(0, False)
            if ds.written_head is None:
                try:
                    await session.respond_error(500)
                    res = FailToProxy(500, False)
                except Error:
                    pass  # the client is gone too: nothing more to tell it
        h = hooks[SUPPRESS]
        if h is None or not h(session, ctx, e):
            # The status the client got: a body cut short after its head went out
            # keeps the head's status (the connection is closed instead).
            head = ds.written_head
            status = head.status if head is not None else res.error_code
            # The why of the answer: the error, the phase it happened in and the peer.
            phase = session.phase
            peer = _peer_text(session.peer)
            # The same failure again (e.g. an origin that is down): counted, and
            # summed up in one line per interval, instead of a line per request.
            et = e.etype  # by its fields: a dataclass's hash is a Python call
            key = (et.name, et.code, e.esource, e.context, status, tries, phase, peer)
            if not self.repeats.repeated(key):
                level = logging.INFO if res.error_code == 0 and e.esource is _DOWNSTREAM \
                    else logging.ERROR
                line = (f"Fail to proxy: {e}, status: {status}, tries: {tries}, phase: {phase}, peer: {peer}, "
                        f"retry: false")
                log.log(level, "%s, %s", line, self.summary(session, ctx))
                self.repeats.logged(key, log, level, line)
        w = self._ended(session, e, ctx)
        if w is not None:
            await w
        if ds.written_head is not None and not ds.finished:
            return False
        # Honoured after the upstream too (Pingora looks at it only before, but its
        # error response always closes the connection anyway).
        if res.can_reuse_downstream:
            return self._reusable(ds)
        return False

    def _ended(self, session: Session, e: Optional[Error], ctx: Any):
        """The request's end, told to the ``logging`` hook and the observer: the
        awaitable to await when the proxy has a logging hook, else None (then the
        observation, if any, is recorded here and the caller awaits nothing)."""
        if self.hooks[LOGGING] is not None:
            return self._logging(session, e, ctx)
        if session.observation is not None:
            self._observed(session, e, ctx)
        return None

    async def _logging(self, session: Session, e: Optional[Error], ctx: Any) -> None:
        try:
            await self.hooks[LOGGING](session, e, ctx)
        except Exception:
            log.exception("logging hook failed on %s", self.summary(session, ctx))
        if session.observation is not None:
            self._observed(session, e, ctx)

    def _observed(self, session: Session, e: Optional[Error], ctx: Any) -> None:
        """The observer's end of the request (metrics, access log, spans)."""
        try:
            session.observation.finish(ctx, e)
        except Exception:
            log.exception("observer failed on %s", self.summary(session, ctx))


def _write_down(ds: DownstreamSession, data: bytes) -> bool:
    """Send a piece of response body to the client; True when the caller must await
    ``ds.drain()`` (a slow client), an error when the client is gone."""
    ds.write_body(data)
    if ds.write_blocked:
        return True
    if ds.closed:
        raise Error.explain(ErrorType.WRITE_ERROR, "client went away").into_down()
    return False


def _peer_text(peer: Optional[HttpPeer]) -> str:
    """The peer in a log line: ``host:port``, a socket path, or ``-`` before one was chosen."""
    if peer is None:
        return "-"
    return peer.address if peer.is_uds else f"{peer.address[0]}:{peer.address[1]}"


def _retryable(e: Error) -> bool:
    try:
        return e.retry()
    except ValueError:
        return False


def _internal(exc: BaseException) -> Error:
    if isinstance(exc, Error):
        return exc
    return Error.because(ErrorType.INTERNAL_ERROR, f"{type(exc).__name__} in a hook", exc).into_in()
