"""Writing the gateway's own small responses (rejections, redirects, fixed responses)."""

from __future__ import annotations

from typing import Any, Iterable, Union

from ...protocols.http.small_response import small_response_header

__all__ = ["reject", "respond"]


async def respond(session: Any, status: int, body: Union[bytes, str] = b"",
                  headers: Iterable[tuple[str, str]] = (), rules: Any = None) -> None:
    """Send a whole response; ``rules`` (the route's response header rules) apply last.

    When the client's request body was not read, the connection is not kept alive:
    what is left of the body must not be taken for the next request.
    """
    if isinstance(body, str):
        body = body.encode()
    resp = small_response_header(status, body, extra=headers)
    if rules is not None:
        rules.apply(resp)
    if not session.is_body_done():
        session.set_keepalive(False)
    await session.write_response_header(resp, end_of_stream=not body)
    if body:
        await session.write_response_body(body, end_of_stream=True)


async def reject(session: Any, status: int, headers: Iterable[tuple[str, str]] = ()) -> None:
    """A plugin's refusal: the status, its headers, and no body."""
    await respond(session, status, b"", headers)
