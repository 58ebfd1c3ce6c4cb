"""Request-side rules of a cache: the upstream request of a miss, client conditionals
answered from cache, and byte ranges of a cached body (facts §7, RFC 9110 §13-14).

* :func:`upstream_request_for_cache` — HEAD goes upstream as GET (the entry serves both),
  the client's conditionals and Range are removed (the cache needs the whole 200), and
  for a stale entry its validators are sent (``If-None-Match`` ← ETag,
  ``If-Modified-Since`` ← Last-Modified) so the origin can answer 304.
* :func:`not_modified` — only a 200 becomes a 304: ``If-None-Match`` first (weak
  comparison, ``*`` matches anything), and only without it ``If-Modified-Since`` on
  GET/HEAD; :func:`to_304` turns the head into the 304 sent.
* :func:`range_request` — ``Range: bytes=...`` against a body of known length: NONE
  (serve it whole, with ``Accept-Ranges: bytes``), SINGLE, MULTI, or INVALID (416).
  As Pingora: only for 200 with Content-Length on GET/HEAD; ``If-Range`` must equal
  the ETag (strong) or the Last-Modified exactly; 200 or more ranges, or overlapping or
  descending ranges, are served as no range; unsatisfiable parts are skipped.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Optional

from ..protocols.http.header import RequestHeader, ResponseHeader
from .filters import parse_http_date
from .meta import CacheMeta

__all__ = ["upstream_request_for_cache", "not_modified", "wants_whole", "to_304", "RangeKind", "RangeRequest",
           "range_request", "apply_range_headers", "multipart_head_and_parts"]

_CONDITIONALS = (b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"if-range", b"range")
MAX_RANGES = 200


def upstream_request_for_cache(req: RequestHeader, stale: Optional[CacheMeta] = None) -> None:
    """Rewrite ``req`` (in place) into what a cache sends upstream."""
    if req.method_bytes == b"HEAD":
        req.set_method(b"GET")
    for name in _CONDITIONALS:
        req.headers.remove(name)
    if stale is not None:
        h = stale.header.headers
        etag = h.get_bytes(b"etag")
        last_modified = h.get_bytes(b"last-modified")
        if etag is not None:
            req.headers.insert(b"If-None-Match", etag)
        if last_modified is not None:
            req.headers.insert(b"If-Modified-Since", last_modified)


def _etag_opaque(tag: bytes) -> bytes:
    tag = tag.strip()
    return tag[2:] if tag.startswith(b"W/") else tag


# The request fields not_modified and range_request look at.
_ASKS_PART_OR_CHECK = frozenset((b"if-none-match", b"if-modified-since", b"range"))


def wants_whole(req: RequestHeader) -> bool:
    """True when ``req`` has no conditional and no Range that :func:`not_modified` or
    :func:`range_request` would look at: the answer is the whole response, whatever
    its head. One pass over the request's fields instead of one per rule."""
    for f in req.headers.fields:
        if f[0] in _ASKS_PART_OR_CHECK:
            return False
    return True


def not_modified(req: RequestHeader, resp: ResponseHeader) -> bool:
    """True when the client's conditionals say its copy of ``resp`` is current."""
    if resp.status != 200:
        return False
    inm = req.headers.get_all_bytes(b"if-none-match")
    if inm:
        etag = resp.headers.get_bytes(b"etag")
        for value in inm:
            for candidate in value.split(b","):
                candidate = candidate.strip()
                if candidate == b"*" or (etag is not None and _etag_opaque(candidate) == _etag_opaque(etag)):
                    return True
        return False
    if req.method_bytes not in (b"GET", b"HEAD"):
        return False
    ims = req.headers.get_bytes(b"if-modified-since")
    if ims is None:
        return False
    last_modified = resp.headers.get_bytes(b"last-modified")
    if last_modified is None:
        return False
    since, modified = parse_http_date(ims), parse_http_date(last_modified)
    return since is not None and modified is not None and since >= modified


def to_304(resp: ResponseHeader) -> ResponseHeader:
    """The 304 for a cached 200: no body, so no Content-Length or Content-Type."""
    out = resp.copy()
    out.set_status(304)
    out.headers.remove(b"content-length")
    out.headers.remove(b"content-type")
    out.headers.remove(b"transfer-encoding")
    return out


class RangeKind(enum.Enum):
    NONE = "none"
    SINGLE = "single"
    MULTI = "multi"
    INVALID = "invalid"


@dataclass(slots=True, init=False)
class RangeRequest:
    kind: RangeKind
    ranges: list[tuple[int, int]] = field(default_factory=list)  # inclusive (start, end)

    # Written out so that it is compiled with the module: one per hit.
    def __init__(self, kind: RangeKind, ranges: Optional[list[tuple[int, int]]] = None) -> None:
        self.kind = kind
        self.ranges = [] if ranges is None else ranges


_RANGE_SPEC = re.compile(rb"\s*(\d*)\s*-\s*(\d*)\s*")


def range_request(req: RequestHeader, resp: ResponseHeader) -> RangeRequest:
    """How to answer ``req``'s Range from the cached ``resp`` (see the module docstring)."""
    none = RangeRequest(RangeKind.NONE)
    value = req.headers.get_bytes(b"range")
    if value is None or resp.status != 200 or req.method_bytes not in (b"GET", b"HEAD"):
        return none
    cl = resp.headers.get_bytes(b"content-length")
    if cl is None or not cl.isdigit():
        return none
    length = int(cl)
    if_range = req.headers.get_bytes(b"if-range")
    if if_range is not None:
        etag = resp.headers.get_bytes(b"etag")
        last_modified = resp.headers.get_bytes(b"last-modified")
        strong_match = etag is not None and not etag.startswith(b"W/") and if_range.strip() == etag.strip()
        if not strong_match and if_range.strip() != (last_modified or b"").strip():
            return none
    unit, sep, specs = value.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes":
        return none
    parts = specs.split(b",")
    if len(parts) >= MAX_RANGES:
        return none
    ranges = []
    for part in parts:
        m = _RANGE_SPEC.fullmatch(part)
        if m is None:
            return none  # a malformed Range is ignored (RFC 9110 §14.2)
        first, last = m.group(1), m.group(2)
        if not first:
            if not last:
                return none
            suffix = int(last)
            if suffix == 0:
                continue
            start, end = max(0, length - suffix), length - 1
        else:
            start = int(first)
            end = min(int(last), length - 1) if last else length - 1
            if last and int(last) < start:
                return none
        if start >= length:
            continue  # unsatisfiable part: skipped
        ranges.append((start, end))
    if not ranges:
        return RangeRequest(RangeKind.INVALID)
    for (s1, e1), (s2, _) in zip(ranges, ranges[1:]):
        if s2 <= e1:
            return none  # overlapping or descending: serve the whole body
    return RangeRequest(RangeKind.SINGLE if len(ranges) == 1 else RangeKind.MULTI, ranges)


def apply_range_headers(resp: ResponseHeader, rr: RangeRequest, length: int, boundary: bytes = b"") -> None:
    """Set the status and fields of ``resp`` (a copy of the cached head) for ``rr``.

    For MULTI the caller passes the ``boundary`` it uses in the body and computes the
    body length with :func:`multipart_head_and_parts`.
    """
    h = resp.headers
    if rr.kind is RangeKind.NONE:
        h.insert(b"Accept-Ranges", b"bytes")
    elif rr.kind is RangeKind.SINGLE:
        start, end = rr.ranges[0]
        resp.set_status(206)
        h.insert(b"Content-Range", b"bytes %d-%d/%d" % (start, end, length))
        h.insert(b"Content-Length", b"%d" % (end - start + 1))
    elif rr.kind is RangeKind.MULTI:
        resp.set_status(206)
        h.insert(b"Content-Type", b"multipart/byteranges; boundary=" + boundary)
    else:
        resp.set_status(416)
        h.insert(b"Content-Range", b"bytes */%d" % length)
        h.insert(b"Content-Length", b"0")
        h.remove(b"content-type")


def multipart_head_and_parts(rr: RangeRequest, length: int, content_type: Optional[bytes],
                             boundary: bytes) -> tuple[list[tuple[bytes, int, int]], bytes, int]:
    """The pieces of a ``multipart/byteranges`` body: a list of (part head, start, end)
    — write each head then the body bytes ``start..end`` — the closing delimiter, and
    the total body length (for Content-Length)."""
    parts = []
    total = 0
    for start, end in rr.ranges:
        head = b"\r\n--" + boundary + b"\r\n"
        if content_type is not None:
            head += b"Content-Type: " + content_type + b"\r\n"
        head += b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (start, end, length)
        parts.append((head, start, end))
        total += len(head) + end - start + 1
    closing = b"\r\n--" + boundary + b"--\r\n"
    return parts, closing, total + len(closing)
