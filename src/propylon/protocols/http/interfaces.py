"""What the request engine needs from a protocol, whatever the HTTP version.

The engine (``propylon.proxy.engine``) drives one request through the hooks and
speaks to the two sides only through these two shapes, so HTTP/1 and HTTP/2 (and
any translation between them) plug in without the engine knowing which is which:

* :class:`DownstreamSession` – one client request and its response
  (HTTP/1: ``v1.server_session.H1ServerSession``; HTTP/2: one stream);
* :class:`UpstreamExchange` – one request/response exchange with an origin
  (HTTP/1: a whole ``v1.client.H1ClientConnection``; HTTP/2: one stream of a
  shared connection).

Headers cross this boundary as :class:`~propylon.protocols.http.header.RequestHeader`
and :class:`~propylon.protocols.http.header.ResponseHeader` in HTTP/1 form
(``Host``, no pseudo-headers): an HTTP/2 side maps ``:authority`` ↔ ``Host`` and the
other pseudo-headers itself. Both sides hand over heads without hop-by-hop fields
(RFC 9110 7.6.1): each codec sets them aside as a head arrives, keeping only
``Upgrade``/``Connection`` of an upgrade and ``TE: trailers``.

After a ``101 Switching Protocols`` both sides become ends of a byte tunnel
(``into_tunnel``), seen through :class:`TunnelEnd` only.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from ...errors import Error
from ..digest import Digest
from .header import HeaderMap, RequestHeader, ResponseHeader

__all__ = ["DownstreamSession", "UpstreamExchange", "TunnelEnd"]


class TunnelEnd(Protocol):
    """One side of a byte tunnel (after a 101), as the tunnel drives it."""

    closed: bool

    def send(self, data: bytes) -> bool:
        """Queue bytes for this side's peer; True when it reads slowly (the tunnel
        then pauses reading the other side until ``on_writable``)."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


#: The callbacks ``into_tunnel`` takes: bytes received, the end of the connection,
#: and "the peer took what it was slow to take".
OnData = Callable[[bytes], None]
OnEvent = Callable[[], object]


class DownstreamSession(Protocol):
    """One request from a client, and the writer of its response."""

    req: RequestHeader            #: the request head as received, hop-by-hop fields set aside
    keepalive: bool               #: may the connection carry another request afterwards
    has_body: bool                #: the request announced a body
    body_received: bool           #: the whole body has arrived (some may still be unread)
    body_error: Optional[Error]   #: set when the body turned out malformed or the client left
    trailers: Optional[HeaderMap]  #: request trailers, once the body is done
    expect_continue: bool         #: the client waits for ``100 Continue`` before its body
    upgrade: bool                 #: an ``Upgrade`` request (WebSocket...)
    is_head: bool                 #: a HEAD request: the response has no body
    written_head: Optional[ResponseHeader]  #: the response head, once written
    finished: bool                #: the response has ended
    requests_before: int          #: requests served earlier on the same connection
    on_lost: Optional[Callable[[], None]]  #: called if the client disappears mid-request
    # Per-request settings (Session's setters; Pingora's defaults):
    write_timeout: Optional[float]  #: drop a client that takes no bytes this long (None: never)
    min_send_rate: Optional[int]  #: bytes/s; a wait may last the waiting bytes' time at this rate (min 1 s)
    close_on_early_response: bool  #: no reuse after a response written before the body arrived (True)

    @property
    def digest(self) -> Optional[Digest]: ...
    @property
    def shutting_down(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def write_blocked(self) -> bool:
        """True when the client reads slowly: await ``drain()`` before writing more."""

    async def read_body(self) -> Optional[bytes]:
        """The next piece of request body; None at its end. Sends ``100 Continue`` first if needed."""

    def is_body_done(self) -> bool:
        """The body arrived in full and the application has read all of it."""

    def write_interim(self, resp: ResponseHeader) -> None:
        """Send a 1xx head (not 101)."""

    def write_header(self, resp: ResponseHeader, end_of_stream: bool = False, hold: bool = False) -> None:
        """Send the response head (``hold``: may wait for the first body piece to go out with it)."""

    def write_body(self, data: bytes) -> None: ...

    def write_head_and_body(self, resp: ResponseHeader, body: bytes, h1_head: Optional[bytes] = None) -> None:
        """``write_header(resp, hold=True)`` then ``write_body(body)``, in one call (a
        response whose body is all at hand, such as a cache hit; ``finish`` follows).
        ``h1_head`` is ``resp`` already in HTTP/1 form, status line and fields without
        the blank line that ends the head, kept by a caller that sends the same head
        often: an HTTP/1 session sends it instead of serialising ``resp`` again (it
        adds the ``Connection`` field when the connection ends or the client speaks
        HTTP/1.0). With it, ``resp`` must have a ``Content-Length`` of ``len(body)``, a
        status with a body and no ``Connection`` field. Other versions ignore it. With
        an empty ``body`` a version may end the response with its head (HTTP/2: END_STREAM
        on HEADERS); ``finish`` then has nothing left to do."""

    def finish(self, trailers: Optional[HeaderMap] = None) -> None:
        """End the response (with trailers, where the protocol can carry them)."""

    async def drain(self) -> None:
        """Wait while the client reads slowly (bounded by ``write_timeout`` /
        ``min_send_rate``: a client that stalls is dropped and this raises)."""

    def into_tunnel(self, on_data: OnData, on_eof: OnEvent, on_writable: OnEvent) -> tuple[TunnelEnd, bytes]:
        """After a 101: the client side as a tunnel end, and the bytes the client
        already sent in the new protocol. From now on received bytes go to
        ``on_data``, the connection's end to ``on_eof``, and ``on_writable`` runs
        when the client took what it was slow to take."""


class UpstreamExchange(Protocol):
    """One exchange with an origin: send a request, read its response."""

    digest: Optional[Digest]
    read_timeout: Optional[float]
    write_timeout: Optional[float]
    trailers: Optional[HeaderMap]  #: response trailers, once the body is done

    @property
    def closed(self) -> bool: ...

    def send_request_header(self, req: RequestHeader, has_body: bool, body_length_known: bool) -> None: ...
    def write_body(self, data: bytes) -> None: ...
    def finish_body(self, trailers: Optional[HeaderMap] = None) -> None: ...
    async def drain(self) -> None: ...

    async def read_response_header(self) -> ResponseHeader:
        """The next response head (1xx heads too, one by one)."""

    async def read_body(self) -> Optional[bytes]:
        """The next piece of response body; None at its end."""

    def take_body(self) -> Optional[bytes]:
        """The body received so far without waiting: ``b""`` if nothing is buffered
        yet, None at the end of the body."""

    def body_ready(self) -> bool:
        """A ``read_body`` call would return without waiting."""

    def at_end(self) -> bool:
        """The response body was read to its end."""

    def fail(self, err: Error) -> None:
        """Abort the exchange: pending and later reads raise ``err``."""

    def client_gone(self) -> None:
        """The client went away: pending and later reads fail (a downstream error)."""

    def reusable(self) -> bool:
        """The connection (or stream slot) can serve another request."""

    def mark_no_reuse(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...

    def into_tunnel(self, on_data: OnData, on_eof: OnEvent, on_writable: OnEvent) -> tuple[TunnelEnd, bytes]:
        """After a 101: the origin side as a tunnel end, and the bytes the origin
        already sent after its 101 (see ``DownstreamSession.into_tunnel``)."""
