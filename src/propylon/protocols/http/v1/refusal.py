"""Why the HTTP/1 codec refused a request: one log line per kind per interval.

A request the codec refuses (400 for a malformed request line, header or body
framing, 405, 414, 431, 501) never reaches the proxy, so the proxy's "Fail to
proxy" line cannot say why. The codec writes its own, in the same shape: the
reason, the status, the phase of the message (``request line``, ``header``,
``body``, ``trailers``), the client's address and what was offending (a byte and
where it was, or a field). A client that sends the same garbage again and again
gets one line per kind per interval with a count of the others
(``propylon.repeats.RepeatedErrors``), not a line per request.

llhttp says what it did not like but not where: the offending byte is looked for
only when the line is written, by scanning the bytes of the read that failed for
the first one HTTP/1 does not allow in its place.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from ....repeats import RepeatedErrors

__all__ = ["log_refusal", "locate"]

log = logging.getLogger("propylon.http.v1")

# RFC 9110 5.6.2: the characters of a token (method, field name).
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _bad_in_value(value: bytes) -> int:
    """Index of the first byte a field value may not hold (controls but HTAB, DEL), or -1."""
    for i, b in enumerate(value):
        if (b < 0x20 and b != 0x09) or b == 0x7F:
            return i
    return -1


def _bad_in_target(target: bytes) -> int:
    """Index of the first byte a request target may not hold (controls, space, DEL, non-ASCII), or -1."""
    for i, b in enumerate(target):
        if b <= 0x20 or b >= 0x7F:
            return i
    return -1


def _byte(b: int) -> str:
    return f"byte 0x{b:02x}"


def _name(name: bytes) -> str:
    return repr(name[:40].decode("latin-1"))


def _request_line(line: bytes) -> Optional[str]:
    method, sp, rest = line.partition(b" ")
    for b in method:
        if b not in _TCHAR:
            return f"{_byte(b)} in the method"
    if not method or not sp:
        return "no method before the first space"
    target, sp, version = rest.partition(b" ")
    i = _bad_in_target(target)
    if i >= 0:
        return f"{_byte(target[i])} at offset {i} of the request target"
    if not sp or not version.startswith(b"HTTP/"):
        return f"version {version[:16]!r}"
    return None


def _field(line: bytes) -> Optional[str]:
    name, colon, value = line.partition(b":")
    if not colon:
        return f"a header line without a colon: {line[:40]!r}"
    for b in name:
        if b not in _TCHAR:
            return f"{_byte(b)} in the field name {_name(name)}"
    if not name:
        return "an empty field name"
    i = _bad_in_value(value)
    if i >= 0:
        return f"{_byte(value[i])} in the value of field {_name(name)}"
    return None


def _chunk_offence(data: bytes, fresh: bool) -> str:
    """The first chunk size line of ``data`` with something that is not hex, walking
    the chunked framing from the start of the body (after the head of a fresh read)."""
    pos = 0
    if fresh:
        end = data.find(b"\r\n\r\n")
        pos = end + 4 if end >= 0 else 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            end = len(data)
        line = data[pos:end]
        size = line.rstrip(b"\r").partition(b";")[0]
        for b in size:
            if b not in _HEX:
                return f"{_byte(b)} in a chunk size line {line[:24]!r}"
        if not size or int(size, 16) == 0:
            break  # the last chunk: trailers follow
        pos = end + 1 + int(size, 16) + 2
    return f"the bytes {data[pos:pos + 24]!r}"


def locate(data: bytes, fresh: bool, phase: str) -> tuple[str, str]:
    """Where the first byte HTTP/1 does not allow is, in ``data`` (the read that
    failed): (phase, what was offending). ``fresh``: the read began with a new
    request's first byte. ``phase`` is what the connection knows (``head``,
    ``body``, ``trailers``); ``head`` is made precise here (request line or header)."""
    if phase == "body":
        return phase, _chunk_offence(data, fresh)
    lines = data.split(b"\n")
    for n, raw in enumerate(lines):
        if n == len(lines) - 1 and raw:
            break  # an unfinished line: it may well be fine once it completes
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if phase == "head" and n == 0 and fresh:
            where = _request_line(line)
            if where is not None:
                return "request line", where
            continue
        if not line:
            break  # the end of the head
        where = _field(line)
        if where is not None:
            return ("header" if phase == "head" else phase), where
    if phase == "head":
        return ("request line" if fresh and len(lines) == 1 else "header"), f"the bytes {data[:24]!r}"
    return phase, f"the bytes {data[:24]!r}"


def _repeats(loop: asyncio.AbstractEventLoop) -> RepeatedErrors:
    """The loop's count of refusals already logged, made on first use and kept on
    the loop itself (as the idle wheel is), so it lives as long as the loop."""
    r = getattr(loop, "propylon_refusals", None)
    if r is None:
        r = RepeatedErrors()
        loop.propylon_refusals = r  # type: ignore[attr-defined]
    return r


def log_refusal(loop: asyncio.AbstractEventLoop, status: int, reason: str, client: object, phase: str,
                where: Optional[str], data: bytes, fresh: bool) -> None:
    """Log why a request was refused, unless the same refusal was logged within the
    interval (then it is only counted). ``where``: the offending field when the
    codec knows it; else it is looked for in ``data``."""
    repeats = _repeats(loop)
    key = (status, reason, phase)
    if repeats.repeated(key):
        return
    if where is None:
        phase, where = locate(data, fresh, phase)
    elif phase == "head":
        phase = "header"
    if isinstance(client, tuple) and len(client) >= 2:
        client = f"{client[0]}:{client[1]}"
    line = f"Refused request: {reason}, status: {status}, phase: {phase}, client: {client}, offending: {where}"
    log.warning("%s", line)
    repeats.logged(key, log, logging.WARNING, f"Refused request: {reason}, status: {status}, phase: {phase}")
