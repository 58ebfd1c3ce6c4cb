"""Paths every lab HTTP member answers, whatever else it does.

================================  ==============================================
``/echo``                         JSON of the request as received (any method)
``/slow?ms=N``                    the member's normal answer, after N ms
``/size?bytes=N[&chunked=1]``     N bytes of body, streamed (Content-Length, or
                                  chunked with ``chunked=1``)
``/status/N``                     status N (body ``status N``)
``/response-headers?K=V&...``     the normal answer with extra response headers
``/close``                        the normal answer, then the connection closes
``/drop``                         the connection closes with no answer
``/__lab/hits[?target=T]``        how many times each target was asked (JSON)
``/__lab/reset``                  forget those counts
================================  ==============================================

Anything else gets the member's default answer (e.g. ``Response from BLUE``).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import AsyncIterator, Awaitable, Callable, Optional, Union
from urllib.parse import parse_qsl

from ._messages import LabRequest, LabResponse

# Hit counts are a test aid; cap the table so a benchmark cannot grow it forever.
_MAX_TARGETS = 10_000
_PATTERN = bytes(range(256)) * 256  # 64 KiB, cycles 0..255

DefaultHandler = Callable[[LabRequest], Union[LabResponse, Awaitable[LabResponse]]]


class HitCounter:
    """Counts requests per target (path and query) for one member."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def hit(self, target: str) -> int:
        """Count one request for ``target`` and return its new count."""
        if target not in self.counts and len(self.counts) >= _MAX_TARGETS:
            self.counts.clear()
        n = self.counts.get(target, 0) + 1
        self.counts[target] = n
        return n

    def get(self, target: str) -> int:
        """How many requests ``target`` has had."""
        return self.counts.get(target, 0)


def echo_document(member: str, req: LabRequest) -> dict[str, object]:
    """The JSON-ready description of ``req`` that ``/echo`` returns."""
    return {
        "member": member,
        "protocol": req.protocol,
        "method": req.method,
        "target": req.target,
        "path": req.path,
        "query": req.query,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in req.headers],
        "trailers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in req.trailers],
        "body_length": req.body_length,
        "body": req.body.decode("utf-8", errors="replace"),
        "body_truncated": len(req.body) < req.body_length,
        "body_sha256": req.body_sha256,
        "chunked": req.chunked,
        "client": req.client,
        "server_pid": os.getpid(),
        "connection_requests": req.connection_requests,
        "tls": req.tls.as_dict() if req.tls else None,
    }


def json_response(doc: object, status: int = 200) -> LabResponse:
    """A JSON response."""
    body = json.dumps(doc, indent=1).encode() + b"\n"
    return LabResponse(status, [("Content-Type", "application/json")], body)


def text_response(text: str, status: int = 200) -> LabResponse:
    """A plain-text response."""
    return LabResponse(status, [("Content-Type", "text/plain; charset=utf-8")], text.encode())


async def pattern_body(size: int) -> AsyncIterator[bytes]:
    """``size`` bytes of a repeating 0..255 pattern, made one 64 KiB piece at a time."""
    left = size
    while left > 0:
        n = min(left, len(_PATTERN))
        yield _PATTERN[:n]
        left -= n


class Routes:
    """A member's request handler: the common paths above, then ``extra``, then ``default``.

    ``base_headers`` are added to every response (e.g. ``X-App-Version``).
    """

    def __init__(self, member: str, default: DefaultHandler,
                 extra: Optional[dict[str, DefaultHandler]] = None,
                 base_headers: Optional[list[tuple[str, str]]] = None) -> None:
        self.member = member
        self.default = default
        self.extra = extra or {}
        self.base_headers = base_headers or []
        self.hits = HitCounter()

    async def __call__(self, req: LabRequest) -> LabResponse:
        path = req.path
        if path.startswith("/__lab/"):
            return self._control(req)
        self.hits.hit(req.target)
        resp = await self._route(req, path)
        if self.base_headers:
            resp.headers = self.base_headers + resp.headers
        return resp

    async def call_default(self, req: LabRequest) -> LabResponse:
        """The member's default answer for ``req``."""
        out = self.default(req)
        if not isinstance(out, LabResponse):
            out = await out
        return out

    async def _route(self, req: LabRequest, path: str) -> LabResponse:
        special = self.extra.get(path)
        if special is not None:
            out = special(req)
            return out if isinstance(out, LabResponse) else await out
        if path == "/echo":
            return json_response(echo_document(self.member, req))
        if path == "/slow":
            await asyncio.sleep(max(0, req.int_param("ms", 1000)) / 1000)
            return await self.call_default(req)
        if path == "/size":
            size = max(0, req.int_param("bytes", 0))
            chunked = req.param("chunked", "0") not in ("0", "false", "")
            return LabResponse(200, [("Content-Type", "application/octet-stream")],
                               pattern_body(size), length=None if chunked else size)
        if path.startswith("/status/"):
            try:
                code = int(path[len("/status/"):])
            except ValueError:
                code = 400
            if not 100 <= code <= 999:
                code = 400
            return text_response(f"status {code}", code)
        if path == "/response-headers":
            resp = await self.call_default(req)
            resp.headers += parse_qsl(req.query, keep_blank_values=True)
            return resp
        if path == "/close":
            resp = await self.call_default(req)
            resp.close = True
            return resp
        if path == "/drop":
            return LabResponse(drop=True)
        return await self.call_default(req)

    def _control(self, req: LabRequest) -> LabResponse:
        if req.path == "/__lab/reset":
            self.hits.counts.clear()
            return json_response({"reset": True})
        if req.path == "/__lab/hits":
            target = req.param("target")
            if target is not None:
                return json_response({"target": target, "hits": self.hits.get(target)})
            return json_response(self.hits.counts)
        return text_response("unknown lab control path", 404)
