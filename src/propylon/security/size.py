"""Request body size limits (lesson 40): check the declared length, count the rest.

Two checks, because a client can omit ``Content-Length`` (chunked uploads) or send
more than it declared:

* fast path, in ``request_filter``: :meth:`BodySizeLimit.check_content_length`
  rejects a declared length over the limit before any body is read;
* slow path, in ``request_body_filter``: :meth:`BodySizeLimit.add` counts the bytes
  of each chunk and raises a 413 :class:`~propylon.errors.Error` once the total goes
  over, which the engine's default ``fail_to_proxy`` answers with status 413.

A ``BodySizeLimit`` counts for one request: create one per request (in ``new_ctx``).
"""

from __future__ import annotations

from typing import Union

from ..errors import Error, ErrorType

__all__ = ["BodySizeLimit"]

_PAYLOAD_TOO_LARGE = ErrorType.http_status(413)


class BodySizeLimit:
    """Limit one request's body to ``max_bytes`` bytes.

    Args:
        max_bytes: the largest body allowed, in bytes (0 allows only empty bodies).

    Example::

        def new_ctx(self):
            return {"size": BodySizeLimit(100)}

        async def request_filter(self, session, ctx):
            if not ctx["size"].check_content_length(session.req_header.headers.get("content-length")):
                await session.respond_error(413)
                return True
            return False

        async def request_body_filter(self, session, body, end_of_stream, ctx):
            if body:
                ctx["size"].add(len(body))   # raises Error(HTTPStatus 413) when over
    """

    __slots__ = ("max_bytes", "received")

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        self.max_bytes = max_bytes
        self.received = 0

    def check_content_length(self, value: Union[str, bytes, int, None]) -> bool:
        """True if a declared ``Content-Length`` is within the limit.

        None (no header) is True: the body, if any, is counted by :meth:`add`. A value
        that is not a plain non-negative decimal number is False (the HTTP parser
        normally refuses such requests with 400 before this runs).
        """
        if value is None:
            return True
        if isinstance(value, int):
            return 0 <= value <= self.max_bytes
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        text = text.strip()
        if not text.isascii() or not text.isdigit():
            return False
        return int(text) <= self.max_bytes

    def add(self, n: int) -> None:
        """Count ``n`` more body bytes; raise a 413 error once the total is over.

        Raises:
            Error: ``ErrorType.http_status(413)``, tagged downstream, naming the limit.
        """
        self.received += n
        if self.received > self.max_bytes:
            raise Error(
                _PAYLOAD_TOO_LARGE,
                f"request body exceeds {self.max_bytes} bytes ({self.received} received)",
            ).into_down()

    @property
    def remaining(self) -> int:
        """Bytes still allowed (0 when the limit is reached or passed)."""
        return max(0, self.max_bytes - self.received)

    def reset(self) -> None:
        """Start counting again from zero (for reuse on a new request)."""
        self.received = 0

    def __repr__(self) -> str:
        return f"BodySizeLimit(max_bytes={self.max_bytes}, received={self.received})"
