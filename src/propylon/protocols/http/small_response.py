"""The one writer of the small, complete responses Propylon sends on its own.

Errors (``Session.respond_error``, a refused request, the 502 of a declined
``proxy_upstream_filter``), metrics and admin answers all carry the same fields:
``Server: Propylon``, ``Date``, ``Content-Length`` and, when there is a body,
``Content-Type``. Extra fields (``Allow``, ``Cache-Control``, ``Connection``...)
come after them.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Iterable, Mapping, Optional, Union

from .header import BytesLike, ResponseHeader

__all__ = ["small_response_header", "small_response", "error_head", "http_date", "NO_STORE", "SERVER"]

#: The ``Server`` value of every response Propylon writes itself.
SERVER = b"Propylon"

#: ``Cache-Control`` of error responses (Pingora's): never stored by a cache.
NO_STORE = ((b"Cache-Control", b"private, no-store"),)

Extra = Optional[Union[Mapping[BytesLike, BytesLike], Iterable[tuple[BytesLike, BytesLike]]]]

_date_cache: list = [0, b""]

#: Statuses whose response never has content, so never a ``Content-Length``.
_NO_CONTENT = frozenset((204, 304))

# The fields Propylon itself always writes, as HeaderMap stores them. Their names
# and values are ours and known to be valid: they are stored without the checks
# HeaderMap's setters make for fields that come from elsewhere (an error answer
# is the cheaper for it, which matters when an origin is down).
_SERVER_FIELD = (b"server", b"Server", SERVER)
_TEXT_FIELD = (b"content-type", b"Content-Type", b"text/plain; charset=utf-8")
_NO_STORE_FIELD = (b"cache-control",) + NO_STORE[0]


def http_date() -> bytes:
    """The current time as an HTTP date, rebuilt at most once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode()
    return _date_cache[1]


def small_response_header(status: int, body: bytes = b"", content_type: Optional[BytesLike] = None,
                          extra: Extra = None) -> ResponseHeader:
    """The head of a complete response whose ``body`` is known in full.

    ``content_type`` defaults to ``text/plain; charset=utf-8`` when there is a body;
    ``extra`` (a mapping or pairs) is added after the standard fields, replacing
    a standard field of the same name. A 204 or 304 has no ``Content-Length``
    (RFC 9110 §8.6) and no body.
    """
    resp = ResponseHeader.build(status)
    h = resp.headers
    fields = h.fields
    fields.append(_SERVER_FIELD)
    fields.append((b"date", b"Date", http_date()))
    if status not in _NO_CONTENT:
        fields.append((b"content-length", b"Content-Length", b"%d" % len(body)))
    if body:
        if content_type is None:
            fields.append(_TEXT_FIELD)
        else:
            h.append(b"Content-Type", content_type)
    if extra is NO_STORE:
        fields.append(_NO_STORE_FIELD)
    elif extra:
        for name, value in (extra.items() if isinstance(extra, Mapping) else extra):
            h.insert(name, value)
    return resp


#: status -> (Date value, head, the head in HTTP/1 form without its blank line).
_error_heads: dict = {}


def error_head(status: int) -> tuple[ResponseHeader, Optional[bytes]]:
    """``small_response_header(status, extra=NO_STORE)`` (an error answer without a
    body) and its HTTP/1 form without the final blank line, for
    ``DownstreamSession.write_head_and_body``. Both are made once per status and
    Date second; the head returned is a copy, as the session may add a field to it
    (``Connection``). A 204 or 304 gets no HTTP/1 form (it has no Content-Length)."""
    date = http_date()
    made = _error_heads.get(status)
    if made is None or made[0] is not date:
        resp = small_response_header(status, extra=NO_STORE)
        h1 = None if status in _NO_CONTENT else resp.to_h1_bytes()[:-2]
        made = _error_heads[status] = (date, resp, h1)
    return made[1].copy(), made[2]


def small_response(status: int, body: bytes = b"", content_type: Optional[BytesLike] = None,
                   extra: Extra = None) -> bytes:
    """The same response as HTTP/1.1 bytes, head and body, ready to write."""
    return small_response_header(status, body, content_type, extra).to_h1_bytes() + body
