"""``Cache-Control`` as RFC 9111 §5.2 defines it, with Pingora's reading of it.

Parsing (:meth:`CacheControl.parse`):

* directives are separated by ``,`` (and, as Pingora tolerates, ``;``), names are
  case-insensitive and kept lowercased; all ``Cache-Control`` fields of a message are
  read as one list;
* a directive has no value, a token value, or a quoted-string value (``\\`` escapes
  removed); a later duplicate replaces an earlier one;
* delta-seconds (``max-age``, ``s-maxage``, ``stale-while-revalidate``,
  ``stale-if-error``) accept the token or the quoted form (RFC 9111 §5.2 asks
  recipients to accept ``max-age="5"``); a value above 2^31 - 1 reads as 2^31 - 1
  (§1.2.2), anything that is not digits reads as if the directive were absent;
* text that is not a directive is skipped up to the next delimiter, so one bad
  directive does not hide the others.

Meaning (what a shared cache does with it, as Pingora decides):

* :meth:`is_cacheable`: NO for ``no-store`` or a bare ``private``; YES for
  ``s-maxage``, ``max-age`` or ``public``; otherwise DEFAULT (other rules decide);
* :meth:`fresh_sec`: bare ``no-cache`` → 0 (stored but revalidated before every use),
  else ``s-maxage``, else ``max-age``, else None;
* :meth:`serve_stale_allowed`: false under ``must-revalidate``, ``proxy-revalidate``
  or ``s-maxage`` (which implies proxy-revalidate for shared caches), so
  stale-while-revalidate and stale-if-error windows are then 0;
* ``private="a, b"`` and ``no-cache="a"`` with a field list do not stop storing: the
  fields they name are dropped from the stored response (:meth:`strip_listed_fields`).
"""

from __future__ import annotations

import enum
import re
from typing import Iterable, Optional

__all__ = ["CacheControl", "Cacheable", "DELTA_SECONDS_MAX"]

DELTA_SECONDS_MAX = 2**31 - 1

# name [= (token | quoted-string)], then optional whitespace; delimiters handled outside.
_DIRECTIVE = re.compile(
    rb'[ \t]*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)[ \t]*(?:=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([!#$%&\'*+\-.^_`|~0-9A-Za-z]*)))?[ \t]*'
)
_QUOTED_PAIR = re.compile(rb"\\(.)")
_DIGITS = re.compile(rb"[0-9]+")


class Cacheable(enum.Enum):
    """What ``Cache-Control`` alone says about storing a response."""

    YES = "yes"
    NO = "no"
    DEFAULT = "default"


class CacheControl:
    """The directives of one message's ``Cache-Control`` fields.

    ``directives`` maps each lowercased name (str) to its value as bytes, or None for
    a directive without ``=``.
    """

    __slots__ = ("directives",)

    def __init__(self, directives: dict[str, Optional[bytes]]) -> None:
        self.directives = directives

    # --- parsing -----------------------------------------------------------------
    @classmethod
    def parse(cls, values: Iterable[bytes]) -> Optional["CacheControl"]:
        """Parse ``Cache-Control`` field values; None when there are no directives."""
        directives: dict[str, Optional[bytes]] = {}
        for value in values:
            _parse_into(value, directives)
        return cls(directives) if directives else None

    @classmethod
    def from_headers(cls, headers) -> Optional["CacheControl"]:
        """Parse the ``Cache-Control`` fields of a :class:`~propylon.HeaderMap`."""
        return cls.parse(headers.get_all_bytes(b"cache-control"))

    # --- raw access --------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.directives

    def value(self, name: str) -> Optional[bytes]:
        return self.directives.get(name)

    def delta_seconds(self, name: str) -> Optional[int]:
        """The directive's delta-seconds, or None if absent or not a number."""
        v = self.directives.get(name)
        if v is None or not _DIGITS.fullmatch(v):
            return None
        return min(int(v), DELTA_SECONDS_MAX)

    def field_names(self, name: str) -> Optional[list[bytes]]:
        """The lowercased field names listed by ``private=`` or ``no-cache=``.

        None when the directive is absent or bare (a bare one covers the whole response).
        """
        v = self.directives.get(name)
        if v is None:
            return None
        return [f.strip().lower() for f in v.split(b",") if f.strip()]

    # --- directives by name --------------------------------------------------------
    @property
    def no_store(self) -> bool:
        return "no-store" in self.directives

    @property
    def public(self) -> bool:
        return "public" in self.directives

    @property
    def private(self) -> bool:
        """True only for a bare ``private`` (the whole response is private)."""
        return "private" in self.directives and self.directives["private"] is None

    @property
    def no_cache(self) -> bool:
        """True only for a bare ``no-cache`` (the whole response needs revalidation)."""
        return "no-cache" in self.directives and self.directives["no-cache"] is None

    @property
    def must_revalidate(self) -> bool:
        return "must-revalidate" in self.directives

    @property
    def proxy_revalidate(self) -> bool:
        return "proxy-revalidate" in self.directives

    @property
    def immutable(self) -> bool:
        return "immutable" in self.directives

    @property
    def no_transform(self) -> bool:
        return "no-transform" in self.directives

    @property
    def only_if_cached(self) -> bool:
        return "only-if-cached" in self.directives

    def max_age(self) -> Optional[int]:
        return self.delta_seconds("max-age")

    def s_maxage(self) -> Optional[int]:
        return self.delta_seconds("s-maxage")

    def stale_while_revalidate(self) -> Optional[int]:
        return self.delta_seconds("stale-while-revalidate")

    def stale_if_error(self) -> Optional[int]:
        return self.delta_seconds("stale-if-error")

    # --- meaning for a shared cache --------------------------------------------------
    def is_cacheable(self) -> Cacheable:
        if self.no_store or self.private:
            return Cacheable.NO
        if self.s_maxage() is not None or self.max_age() is not None or self.public:
            return Cacheable.YES
        return Cacheable.DEFAULT

    def fresh_sec(self) -> Optional[int]:
        """Seconds the response stays fresh, by ``Cache-Control`` alone (None: not said)."""
        if self.no_cache:
            return 0
        s = self.s_maxage()
        return s if s is not None else self.max_age()

    def serve_stale_allowed(self) -> bool:
        """False when the origin forbids serving this response stale."""
        return not (self.must_revalidate or self.proxy_revalidate or self.s_maxage() is not None)

    def allow_caching_authorized_req(self) -> bool:
        """RFC 9111 §3.5: a response to a request with ``Authorization`` may be stored
        by a shared cache only with one of these."""
        return self.must_revalidate or self.public or self.s_maxage() is not None

    def listed_fields(self) -> list[bytes]:
        """Fields named by ``private=`` and ``no-cache=``: never stored."""
        return (self.field_names("private") or []) + (self.field_names("no-cache") or [])

    def strip_listed_fields(self, headers) -> None:
        """Remove from ``headers`` the fields ``private=``/``no-cache=`` name."""
        for name in self.listed_fields():
            headers.remove(name)

    def __repr__(self) -> str:
        return f"CacheControl({self.directives!r})"


def _parse_into(value: bytes, out: dict[str, Optional[bytes]]) -> None:
    pos, end = 0, len(value)
    while pos < end:
        m = _DIRECTIVE.match(value, pos)
        if m is not None and m.group(1):
            nxt = m.end()
            if nxt == end or value[nxt] in b",;":
                quoted, token = m.group(2), m.group(3)
                if quoted is not None:
                    val: Optional[bytes] = _QUOTED_PAIR.sub(rb"\1", quoted)
                else:
                    val = token  # None when there was no '='
                out[m.group(1).decode("ascii").lower()] = val
                pos = nxt + 1
                continue
        # Not a directive: skip to the next delimiter outside a quoted string.
        pos = _skip_to_delimiter(value, pos)


def _skip_to_delimiter(value: bytes, pos: int) -> int:
    in_quotes = False
    end = len(value)
    while pos < end:
        c = value[pos]
        if in_quotes:
            if c == 0x5C:  # backslash
                pos += 1
            elif c == 0x22:
                in_quotes = False
        elif c == 0x22:
            in_quotes = True
        elif c in b",;":
            return pos + 1
        pos += 1
    return end
