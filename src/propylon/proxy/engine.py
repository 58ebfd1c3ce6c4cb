"""The request engine: drives one downstream request through the ``ProxyHttp`` hooks.

``HttpProxyEngine.handle`` runs in the connection's task, once per request, and
returns whether the client connection may carry another request. The order of the
hooks, the retry loop and the error paths follow Pingora's ``process_request``
(see ``docs/phases.md``).

Hooks the proxy class does not override are resolved to ``None`` once, at
construction, and skipped; the defaults that do something (``error_while_proxy``,
``fail_to_proxy``) run inline here unless overridden.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from ..errors import Error, ErrorSource, ErrorType
from ..protocols.http.compression import CompressionOptions, response_coding
from ..protocols.http.header import ResponseHeader
from ..protocols.http.interfaces import DownstreamSession, UpstreamExchange
from ..connectors.http import HttpConnector
from ..protocols.http.v1.common import RETRY_BUFFER_LIMIT, strip_hop_by_hop
from ..upstreams.peer import HttpPeer
from .proxy_trait import (FailToProxy, ProxyHttp, default_error_status, default_request_summary,
                          overridden_hooks)
from .session import Session
from .tunnel import tunnel

log = logging.getLogger("propylon.proxy")

__all__ = ["HttpProxyEngine"]


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
                 compression: Optional[CompressionOptions] = None) -> None:
        self.proxy = proxy
        self.compression = compression if compression is not None and compression.active else None
        self.max_retries = max(1, max_retries)
        self.connector = HttpConnector(pool_size, ca_file, bind_to_v4, bind_to_v6)
        hooks = overridden_hooks(proxy)
        pick = lambda name: getattr(proxy, name) if name in hooks else None  # noqa: E731
        self.h_early = pick("early_request_filter")
        self.h_request = pick("request_filter")
        self.h_proxy_upstream = pick("proxy_upstream_filter")
        self.h_fail_connect = pick("fail_to_connect")
        self.h_connected = pick("connected_to_upstream")
        self.h_up_request = pick("upstream_request_filter")
        self.h_req_body = pick("request_body_filter")
        self.h_up_response = pick("upstream_response_filter")
        self.h_response = pick("response_filter")
        self.h_up_body = pick("upstream_response_body_filter")
        self.h_body = pick("response_body_filter")
        self.h_up_trailer = pick("upstream_response_trailer_filter")
        self.h_error_while = pick("error_while_proxy")
        self.h_fail_proxy = pick("fail_to_proxy")
        self.h_suppress = pick("suppress_error_log")
        self.h_logging = pick("logging")
        self.new_ctx = proxy.new_ctx if type(proxy).new_ctx is not ProxyHttp.new_ctx else None
        self.upstream_peer = proxy.upstream_peer
        self.before_upstream = any(h is not None for h in (
            self.new_ctx, self.h_early, self.h_request, self.h_proxy_upstream))

    # --- one request ------------------------------------------------------------------
    async def handle(self, ds: DownstreamSession) -> bool:
        session = Session(ds, self.compression)
        ctx = None
        if self.before_upstream:
            try:
                if self.new_ctx is not None:
                    ctx = self.new_ctx()
                if self.h_early is not None:
                    await self.h_early(session, ctx)
                if self.h_request is not None and await self.h_request(session, ctx):
                    if self.h_logging is not None:
                        await self._logging(session, None, ctx)
                    return self._reusable(ds)
                if self.h_proxy_upstream is not None and not await self.h_proxy_upstream(session, ctx):
                    if ds.response_written is None:
                        await self._respond_502_keepalive(session)
                    if self.h_logging is not None:
                        await self._logging(session, None, ctx)
                    return self._reusable(ds)
            except Error as e:
                return await self._handle_error(session, e, ctx, before_upstream=True, tries=0)
            except Exception as exc:  # a bug in a hook: answer 500, log it with its traceback
                log.exception("hook failed on %s", default_request_summary(session))
                return await self._handle_error(session, _internal(exc), ctx, before_upstream=True, tries=0)

        if ds.body_error is not None:
            # The body was already found malformed: nothing of it goes upstream.
            return await self._handle_error(session, ds.body_error, ctx, before_upstream=True, tries=0)
        tries = 0
        error: Optional[Error] = None
        while tries < self.max_retries:
            tries += 1
            try:
                await self._proxy_once(session, ctx)
                error = None
                break
            except Error as e:
                error = e
            except Exception as exc:
                log.exception("hook failed on %s", default_request_summary(session))
                error = _internal(exc)
                break
            if ds.response_written is not None or not _retryable(error):
                break
            log.warning("Fail to proxy: %s, tries: %d, retry: true, %s", error, tries, default_request_summary(session))
        if error is not None:
            return await self._handle_error(session, error, ctx, before_upstream=False, tries=tries)
        if self.h_logging is not None:
            await self._logging(session, None, ctx)
        return self._reusable(ds)

    async def _proxy_once(self, session: Session, ctx: Any) -> None:
        """One attempt: pick the peer, get a connection, exchange the request."""
        peer = await self.upstream_peer(session, ctx)
        if not isinstance(peer, HttpPeer):
            raise Error.explain(ErrorType.INTERNAL_ERROR,
                                f"upstream_peer returned {type(peer).__name__}, not HttpPeer").into_in()
        conn = self.connector.reuse(peer)
        if conn is not None:
            reused = True
        else:
            try:
                conn, reused = await self.connector.get(peer)
            except Error as e:
                e.esource = ErrorSource.UPSTREAM
                if self.h_fail_connect is not None:
                    e = self.h_fail_connect(session, peer, ctx, e)
                    e.esource = ErrorSource.UPSTREAM
                raise e
        session.upstream_reused = reused
        ds = session.downstream
        try:
            if self.h_connected is not None:
                await self.h_connected(session, reused, peer, conn.digest, ctx)
            retry_body = session._retry_body() if session._retry_buf is not None else None
            has_body = ds.has_body or retry_body is not None
            up_req = session.req_header
            if (has_body or ds.hop_by_hop or ds.expect_continue or self.h_up_request is not None
                    or up_req.version != (1, 1)):
                # The upstream gets its own copy when anything may change it; a
                # plain request goes out as received.
                up_req = up_req.copy()
                if ds.hop_by_hop:
                    strip_hop_by_hop(up_req.headers, keep_upgrade=ds.upgrade)
                if ds.expect_continue:
                    up_req.headers.remove(b"expect")
                if self.h_up_request is not None:
                    await self.h_up_request(session, up_req, ctx)
            opts = peer.settings()
            conn.read_timeout = opts.read_timeout
            conn.write_timeout = opts.write_timeout
            conn.send_request_header(up_req, has_body, has_body and b"content-length" in up_req.headers)
            # A dead client must not leave us waiting on the origin.
            ds.on_lost = conn.client_gone
            try:
                if has_body or ds.upgrade:
                    await self._exchange_streaming(session, ctx, peer, conn, retry_body)
                else:
                    if self.h_req_body is not None:
                        await self.h_req_body(session, None, True, ctx)
                    await self._relay_response(session, ctx, peer, conn)
            finally:
                ds.on_lost = None
        except Error as e:
            conn.abort()
            # I/O errors were tagged upstream where they happened; an error a hook
            # raised keeps its own source (unset → 500, as in Pingora).
            client_reused = reused and not session.retry_buffer_truncated
            if self.h_error_while is not None:
                e = self.h_error_while(peer, session, e, ctx, client_reused)
            else:
                e.context = f"{e.context}, Peer: {peer}" if e.context else f"Peer: {peer}"
                e.decide_reused(client_reused)
            raise e
        except BaseException:
            conn.abort()
            raise
        self.connector.release(peer, conn)

    async def _exchange_streaming(self, session: Session, ctx: Any, peer: HttpPeer,
                                  conn: UpstreamExchange, retry_body: Optional[bytes]) -> None:
        """The exchange of a request with a body (sent by a task while the response
        is relayed) or of an upgrade (both directions handed to the tunnel)."""
        ds = session.downstream
        sender: Optional[_BodySender] = None
        try:
            if not ds.upgrade:
                sender = _BodySender()
                sender.task = asyncio.get_running_loop().create_task(
                    self._send_body(session, ctx, conn, sender, retry_body))
            await self._relay_response(session, ctx, peer, conn)
        except Error as e:
            if sender is not None and sender.error is not None and isinstance(sender.error, Error):
                raise sender.error from None
            raise e
        finally:
            if sender is not None and sender.task is not None and not sender.task.done():
                sender.task.cancel()
                conn.mark_no_reuse()
        if sender is not None:
            if sender.error is not None:
                err = sender.error
                raise err if isinstance(err, Error) else _internal(err)
            if not sender.done:
                conn.mark_no_reuse()

    async def _send_body(self, session: Session, ctx: Any, conn: UpstreamExchange,
                         sender: _BodySender, retry_body: Optional[bytes]) -> None:
        ds = session.downstream
        filt = self.h_req_body
        try:
            if retry_body is not None:
                data = retry_body
                if filt is not None:
                    r = await filt(session, data, ds.body_complete(), ctx)
                    if r is not None:
                        data = r
                conn.write_body(data)
                await conn.drain()
            while True:
                data = await ds.read_body()
                eos = data is None or ds.body_complete()
                if data is not None and not session.retry_buffer_truncated:
                    session._remember_body(data, RETRY_BUFFER_LIMIT)
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
            conn.fail(sender.error)

    async def _relay_response(self, session: Session, ctx: Any, peer: HttpPeer,
                              conn: UpstreamExchange) -> None:
        ds = session.downstream
        resp = await conn.read_response_header()
        status = resp.status
        while status < 200 and status != 101:
            if status != 100 and ds.req.version >= (1, 1):
                ds.write_interim(resp)  # e.g. 103 Early Hints
            resp = await conn.read_response_header()
            status = resp.status
        # Response heads arrive without hop-by-hop fields: the codecs keep them aside.
        if self.h_up_response is not None:
            await self.h_up_response(session, resp, ctx)
        if self.h_response is not None:
            await self.h_response(session, resp, ctx)
        if status == 101:
            if not ds.upgrade:
                raise Error.explain(ErrorType.H1_ERROR, "101 to a request that asked no upgrade").into_up()
            ds.write_header(resp)
            await tunnel(ds, conn, peer.settings().read_timeout)
            return
        if session.compression is not None:
            ds, conn = response_coding(session.compression, session.req_header, resp, ds, conn,
                                       self.h_up_body is not None or self.h_body is not None)
        up_body = self.h_up_body
        body_filt = self.h_body
        if up_body is None and body_filt is None:
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
        if trailers is not None and self.h_up_trailer is not None:
            self.h_up_trailer(session, trailers, ctx)
        ds.finish(trailers)
        if ds.write_blocked:
            await ds.drain()

    async def _relay_filtered_body(self, session: Session, ctx: Any, ds: DownstreamSession,
                                   conn: UpstreamExchange, resp: ResponseHeader) -> None:
        """The response body through the body filters the proxy defines."""
        up_body = self.h_up_body
        body_filt = self.h_body
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
        if ds.response_written is not None and not ds.finished:
            return False
        return ds.body_complete()

    async def _respond_502_keepalive(self, session: Session) -> None:
        ds = session.downstream
        resp = ResponseHeader.build(502)
        resp.headers.append(b"Server", b"Propylon")
        resp.headers.append(b"Content-Length", b"0")
        resp.headers.append(b"Cache-Control", b"private, no-store")
        ds.write_header(resp, end_of_stream=True)
        await ds.drain()

    async def _handle_error(self, session: Session, e: Error, ctx: Any,
                            before_upstream: bool, tries: int) -> bool:
        ds = session.downstream
        try:
            if self.h_fail_proxy is not None:
                res = await self.h_fail_proxy(session, e, ctx)
            else:
                code = default_error_status(e)
                if code > 0:
                    await session.respond_error(code)
                res = FailToProxy(code, False)
        except Exception:
            log.exception("fail_to_proxy failed on %s", default_request_summary(session))
            res = FailToProxy(0, False)
            if ds.response_written is None:
                try:
                    await session.respond_error(500)
                    res = FailToProxy(500, False)
                except Error:
                    pass  # the client is gone too: nothing more to tell it
        if self.h_suppress is None or not self.h_suppress(session, ctx, e):
            summary = self.proxy.request_summary(session, ctx)
            if res.error_code == 0 and e.esource is ErrorSource.DOWNSTREAM:
                log.info("Fail to proxy: %s, status: %d, tries: %d, retry: false, %s",
                         e, res.error_code, tries, summary)
            else:
                log.error("Fail to proxy: %s, status: %d, tries: %d, retry: false, %s",
                          e, res.error_code, tries, summary)
        await self._logging(session, e, ctx)
        if ds.response_written is not None and not ds.finished:
            return False
        if before_upstream and res.can_reuse_downstream:
            return self._reusable(ds)
        return False

    async def _logging(self, session: Session, e: Optional[Error], ctx: Any) -> None:
        if self.h_logging is not None:
            try:
                await self.h_logging(session, e, ctx)
            except Exception:
                log.exception("logging hook failed on %s", default_request_summary(session))


def _write_down(ds: DownstreamSession, data: bytes) -> bool:
    """Send a piece of response body to the client; True when the caller must await
    ``ds.drain()`` (a slow client), an error when the client is gone."""
    ds.write_body(data)
    if ds.write_blocked:
        return True
    if ds.closed:
        raise Error.explain(ErrorType.WRITE_ERROR, "client went away").into_down()
    return False


def _retryable(e: Error) -> bool:
    try:
        return e.retry()
    except ValueError:
        return False


def _internal(exc: BaseException) -> Error:
    if isinstance(exc, Error):
        return exc
    return Error.because(ErrorType.INTERNAL_ERROR, f"{type(exc).__name__} in a hook", exc).into_in()
