"""What is stored beside a cached body: timestamps, serve-stale windows and the head.

Times are wall-clock seconds since the epoch (``time.time()``), because a meta outlives
the process that wrote it (disk, Redis) and is shared between machines.

* fresh while ``now <= fresh_until``; afterwards stale;
* a stale entry may be served while revalidating (SWR) or on an upstream error (SIE) if
  that window is positive and ``fresh_until + window >= now``;
* ``age`` counts from ``updated`` (the last time the origin confirmed the entry: the
  fill or a 304), as Pingora's ``CacheMeta::age`` does.

:meth:`CacheMeta.to_bytes` is a compact binary form (a 48-byte fixed part, then the
status line and the header fields length-prefixed), read back by
:meth:`CacheMeta.from_bytes` which rejects anything malformed with ``ValueError``.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..protocols.http.header import HeaderMap, ResponseHeader

__all__ = ["CacheMeta", "CacheMetaDefaults"]

_MAGIC = b"PCM1"
# magic, created, updated, fresh_until, swr, sie, status, variance length, field count
_FIXED = struct.Struct(">4sdddIIHBxH")
_FIELD = struct.Struct(">HI")
_REASON = struct.Struct(">H")
_NO_REASON = 0xFFFF
#: Added to a hit served whole that has no Accept-Ranges of its own.
ACCEPT_RANGES = (b"accept-ranges", b"Accept-Ranges", b"bytes")


@dataclass(slots=True)
class CacheMeta:
    """One cached response's metadata and head (Pingora's ``CacheMeta``)."""

    fresh_until: float
    created: float
    updated: float
    stale_while_revalidate_sec: int
    stale_if_error_sec: int
    header: ResponseHeader
    variance: Optional[bytes] = None
    # Set by storage on lookup: the entry's stored body length when known.
    body_len: Optional[int] = field(default=None, compare=False)
    # What every hit of this entry starts from (see hit_head), made at the first hit.
    _hit_fields: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)
    # The head of a whole hit for the latest Age served (see whole_hit_head).
    _whole_hit: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def new(cls, fresh_until: float, created: float, swr: int, sie: int, header: ResponseHeader) -> "CacheMeta":
        return cls(fresh_until, created, created, swr, sie, header)

    # --- freshness ---------------------------------------------------------------
    def is_fresh(self, now: Optional[float] = None) -> bool:
        return self.fresh_until >= (time.time() if now is None else now)

    def fresh_sec(self) -> float:
        """The freshness lifetime this entry was given (``fresh_until - updated``)."""
        return max(0.0, self.fresh_until - self.updated)

    def age(self, now: Optional[float] = None) -> int:
        """Whole seconds since the origin last gave or confirmed this response."""
        return max(0, int((time.time() if now is None else now) - self.updated))

    def serve_stale_while_revalidate(self, now: Optional[float] = None) -> bool:
        return _stale_allowed(self.fresh_until, self.stale_while_revalidate_sec, now)

    def serve_stale_if_error(self, now: Optional[float] = None) -> bool:
        return _stale_allowed(self.fresh_until, self.stale_if_error_sec, now)

    def expires_at(self) -> float:
        """When nothing may be served from this entry any more (for storage expiry)."""
        return self.fresh_until + max(self.stale_while_revalidate_sec, self.stale_if_error_sec)

    # --- what the head says ----------------------------------------------------------
    def hit_head(self, now: Optional[float] = None) -> ResponseHeader:
        """A new response head for serving this entry: the stored head with ``Age``
        set for ``now``. The stored fields less ``Age`` are prepared once per entry,
        so a hit copies one list instead of editing the head field by field."""
        prepared = self._hit_fields
        if prepared is None:
            fields = [f for f in self.header.headers.fields if f[0] != b"age"]
            prepared = self._hit_fields = (fields, any(f[0] == b"accept-ranges" for f in fields))
        fields = prepared[0] + [(b"age", b"Age", b"%d" % self.age(now))]
        h = self.header
        return ResponseHeader(h.status, (1, 1), HeaderMap(fields), h.reason)

    def whole_hit_head(self, length: int, now: Optional[float] = None) -> tuple[ResponseHeader, Optional[bytes]]:
        """The head of a hit served whole from a seekable body of ``length`` bytes
        (:meth:`hit_head` with ``Accept-Ranges: bytes`` added when the stored head has
        none), and the same head in HTTP/1 form without the blank line that ends it,
        for :meth:`DownstreamSession.write_head_and_body`. The HTTP/1 form is None
        when the head does not frame the body by itself: no ``Content-Length`` of
        ``length``, a status without a body, or a ``Connection`` field. It is kept for
        the Age it was made with, so only the first hit of each second serialises it."""
        age = self.age(now)
        made = self._whole_hit
        if made is None or made[0] != age:
            made = self._whole_hit = self._make_whole_hit(age)
        h = self.header
        resp = ResponseHeader(h.status, (1, 1), HeaderMap(list(made[1])), h.reason)
        return resp, (made[2] if made[3] == length else None)

    def _make_whole_hit(self, age: int) -> tuple:
        """(Age, the fields of the whole hit's head, its HTTP/1 form, the Content-Length
        it frames or -1 when it frames none)."""
        resp = self.hit_head()
        fields = resp.headers.fields
        fields[-1] = (b"age", b"Age", b"%d" % age)
        if not self._hit_fields[1]:
            fields.append(ACCEPT_RANGES)
        headers = resp.headers
        cl = headers.get_bytes(b"content-length")
        framed = -1
        if (cl is not None and cl.isdigit() and 200 <= resp.status and resp.status not in (204, 304)
                and headers.get_bytes(b"connection") is None):
            framed = int(cl)
        head = resp.to_h1_bytes()[:-2]  # without the final CRLF: the session ends the head
        return age, tuple(fields), head, framed

    def has_accept_ranges(self) -> bool:
        """Whether the stored head has ``Accept-Ranges`` (known after :meth:`hit_head`)."""
        prepared = self._hit_fields
        return prepared is not None and prepared[1]

    def tags(self) -> list[bytes]:
        """Purge tags: ``Cache-Tag`` values (comma-separated) and ``Surrogate-Key``
        values (space-separated), deduplicated in order of appearance."""
        seen: dict[bytes, None] = {}
        h = self.header.headers
        for v in h.get_all_bytes(b"cache-tag"):
            for t in v.split(b","):
                t = t.strip()
                if t:
                    seen[t] = None
        for v in h.get_all_bytes(b"surrogate-key"):
            for t in v.split():
                seen[t] = None
        return list(seen)

    # --- serialisation -------------------------------------------------------------
    def to_bytes(self) -> bytes:
        h = self.header
        items = h.headers.raw_items()
        variance = self.variance or b""
        out = [
            _FIXED.pack(_MAGIC, self.created, self.updated, self.fresh_until,
                        self.stale_while_revalidate_sec, self.stale_if_error_sec,
                        h.status, len(variance), len(items)),
            variance,
        ]
        if h.reason is None:
            out.append(_REASON.pack(_NO_REASON))
        else:
            out.append(_REASON.pack(len(h.reason)))
            out.append(h.reason)
        for name, value in items:
            out.append(_FIELD.pack(len(name), len(value)))
            out.append(name)
            out.append(value)
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> "CacheMeta":
        try:
            return _decode(memoryview(data))
        except (struct.error, IndexError) as exc:
            raise ValueError(f"truncated cache meta ({len(data)} bytes)") from exc


def _decode(data: memoryview) -> CacheMeta:
    magic, created, updated, fresh_until, swr, sie, status, vlen, nfields = _FIXED.unpack_from(data, 0)
    if magic != _MAGIC:
        raise ValueError(f"not a cache meta (starts with {bytes(magic)!r})")
    pos = _FIXED.size
    variance = bytes(data[pos:pos + vlen]) if vlen else None
    pos += vlen
    (rlen,) = _REASON.unpack_from(data, pos)
    pos += _REASON.size
    reason = None
    if rlen != _NO_REASON:
        reason = bytes(data[pos:pos + rlen])
        pos += rlen
    items = []
    for _ in range(nfields):
        nlen, vl = _FIELD.unpack_from(data, pos)
        pos += _FIELD.size
        name = bytes(data[pos:pos + nlen])
        value = bytes(data[pos + nlen:pos + nlen + vl])
        pos += nlen + vl
        items.append((name.lower(), name, value))
    if pos != len(data):
        raise ValueError(f"cache meta has {len(data) - pos} bytes past its end" if pos < len(data)
                         else "truncated cache meta")
    header = ResponseHeader(status, (1, 1), HeaderMap(items), reason)
    return CacheMeta(fresh_until, created, updated, swr, sie, header, variance)


def _stale_allowed(fresh_until: float, window: int, now: Optional[float]) -> bool:
    if window <= 0:
        return False
    return fresh_until + window >= (time.time() if now is None else now)


class CacheMetaDefaults:
    """What applies when the origin's headers say nothing (Pingora's ``CacheMetaDefaults``).

    Args:
        fresh_sec_fn: status code → seconds fresh, or None for "do not cache a response
            with this status unless its headers say so". There is no built-in table.
        stale_while_revalidate_sec: SWR window when ``Cache-Control`` gives none.
        stale_if_error_sec: SIE window when ``Cache-Control`` gives none.

    A 304 is looked up as the 200 it revalidates.
    """

    __slots__ = ("_fresh_sec_fn", "stale_while_revalidate_sec", "stale_if_error_sec")

    def __init__(self, fresh_sec_fn: Callable[[int], Optional[int]],
                 stale_while_revalidate_sec: int = 0, stale_if_error_sec: int = 0) -> None:
        if stale_while_revalidate_sec < 0:
            raise ValueError(f"stale_while_revalidate_sec must be >= 0, got {stale_while_revalidate_sec}")
        if stale_if_error_sec < 0:
            raise ValueError(f"stale_if_error_sec must be >= 0, got {stale_if_error_sec}")
        self._fresh_sec_fn = fresh_sec_fn
        self.stale_while_revalidate_sec = stale_while_revalidate_sec
        self.stale_if_error_sec = stale_if_error_sec

    def fresh_sec(self, status: int) -> Optional[int]:
        return self._fresh_sec_fn(200 if status == 304 else status)
