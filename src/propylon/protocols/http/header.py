"""HTTP request and response headers.

Headers stay bytes: a field is stored as ``(lowercased name, name as on the wire,
value)`` in arrival order, so lookups are case-insensitive while the wire keeps the
original case and order. Text is produced only when someone asks for it
(``get()`` decodes, ``get_bytes()`` does not).

Values given as ``str`` are encoded as Latin-1 when possible, else UTF-8. Names and
values are checked when set from code: a CR, LF or NUL would let a hook smuggle a
second header or message, so it raises ``ValueError`` naming the field.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Union

try:  # Cython is needed to build the compiled module, not to run the pure one
    import cython
    _COMPILED = cython.compiled
except ImportError:
    _COMPILED = False

__all__ = ["HeaderMap", "RequestHeader", "ResponseHeader", "Version", "named_by_connection", "reason_phrase"]

BytesLike = Union[bytes, str]

# Field names are tokens (RFC 9110 5.1); values may hold any visible octet, SP or HTAB.
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_BAD_VALUE = (b"\r", b"\n", b"\x00")


def _lower(name: bytes) -> bytes:
    """``name.lower()``. Compiled, a name with no capital letter (the usual case: the
    names code looks up are written in lowercase) is returned as it is, after a C
    scan, instead of through a method call making a copy."""
    if not _COMPILED:
        return name.lower()
    for c in name:
        if 65 <= c <= 90:  # A-Z
            return name.lower()
    return name


def _to_bytes(v: BytesLike) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        try:
            return v.encode("latin-1")
        except UnicodeEncodeError:
            return v.encode("utf-8")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, int):
        return str(v).encode()
    raise TypeError(f"header name/value must be str or bytes, not {type(v).__name__}")


# Connection options that are not field names (and the empty token of "a,,b").
_CONNECTION_OPTIONS = frozenset((b"", b"close", b"keep-alive"))
_NO_NAMES: frozenset = frozenset()


def named_by_connection(value: bytes) -> frozenset:
    """The field names a ``Connection`` value lists (RFC 9110 7.6.1), lowercased.

    Those fields describe the connection too, so a proxy drops them with the
    hop-by-hop ones; ``close`` and ``keep-alive`` are options, not names.
    """
    v = value.lower()
    if v in _CONNECTION_OPTIONS:  # the usual value: nothing named
        return _NO_NAMES
    return frozenset(t.strip() for t in v.split(b",")) - _CONNECTION_OPTIONS


def _checked_name(name: BytesLike) -> bytes:
    b = _to_bytes(name)
    if not b or not _TOKEN.issuperset(b):
        raise ValueError(f"invalid header name {b!r}")
    return b


def _checked_value(name: bytes, value: BytesLike) -> bytes:
    b = _to_bytes(value)
    for bad in _BAD_VALUE:
        if bad in b:
            raise ValueError(f"invalid character {bad!r} in value of header {name.decode('latin-1')}")
    return b


class HeaderMap:
    """An ordered, case-insensitive, multi-valued collection of header fields.

    ``fields`` is the list itself, ``(lowercased name, wire name, value)`` triples
    in wire order: codecs read it directly; everyone else uses the methods, which
    check what they store.
    """

    __slots__ = ("fields",)

    def __init__(self, items: Optional[list] = None) -> None:
        self.fields: list[tuple[bytes, bytes, bytes]] = items if items is not None else []

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[BytesLike, BytesLike]]) -> "HeaderMap":
        m = cls()
        for n, v in pairs:
            m.append(n, v)
        return m

    # --- reading -----------------------------------------------------------------
    def get_bytes(self, name: BytesLike) -> Optional[bytes]:
        """The first value of ``name`` as bytes, or None."""
        key = _lower(name) if type(name) is bytes else _to_bytes(name).lower()
        for item in self.fields:
            if item[0] == key:
                return item[2]
        return None

    def get(self, name: BytesLike, default: Optional[str] = None) -> Optional[str]:
        """The first value of ``name`` as text (Latin-1 decoded), or ``default``."""
        v = self.get_bytes(name)
        return default if v is None else v.decode("latin-1")

    def get_all(self, name: BytesLike) -> list[str]:
        key = _to_bytes(name).lower()
        return [v.decode("latin-1") for lower, _, v in self.fields if lower == key]

    def get_all_bytes(self, name: BytesLike) -> list[bytes]:
        key = _to_bytes(name).lower()
        return [v for lower, _, v in self.fields if lower == key]

    def __contains__(self, name: object) -> bool:
        if type(name) is bytes:
            key = _lower(name)
        elif isinstance(name, str):
            key = _to_bytes(name).lower()
        else:
            return False
        for lower, _, _ in self.fields:
            if lower == key:
                return True
        return False

    def __getitem__(self, name: BytesLike) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __len__(self) -> int:
        return len(self.fields)

    def __iter__(self) -> Iterator[str]:
        return (wire.decode("latin-1") for _, wire, _ in self.fields)

    def items(self) -> list[tuple[str, str]]:
        """(name, value) text pairs in wire order, names in wire case."""
        return [(w.decode("latin-1"), v.decode("latin-1")) for _, w, v in self.fields]

    def raw_items(self) -> list[tuple[bytes, bytes]]:
        return [(w, v) for _, w, v in self.fields]

    def copy(self) -> "HeaderMap":
        return HeaderMap(list(self.fields))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeaderMap) and self.fields == other.fields

    def __repr__(self) -> str:
        return f"HeaderMap({self.items()!r})"

    # --- writing -----------------------------------------------------------------
    def insert(self, name: BytesLike, value: BytesLike) -> None:
        """Set ``name`` to ``value``, replacing every earlier value of it.

        The field keeps the position of its first occurrence, or goes last if new.
        """
        wire = _checked_name(name)
        val = _checked_value(wire, value)
        key = wire.lower()
        items = self.fields
        for i, it in enumerate(items):
            if it[0] == key:
                items[i] = (key, wire, val)
                j = i + 1
                while j < len(items):
                    if items[j][0] == key:
                        del items[j]
                    else:
                        j += 1
                return
        items.append((key, wire, val))

    def append(self, name: BytesLike, value: BytesLike) -> None:
        """Add a value of ``name`` after the existing ones."""
        wire = _checked_name(name)
        self.fields.append((wire.lower(), wire, _checked_value(wire, value)))

    def remove(self, name: BytesLike) -> Optional[str]:
        """Remove every value of ``name``; return the first removed, or None."""
        key = _to_bytes(name).lower()
        first = None
        kept = []
        for it in self.fields:
            if it[0] == key:
                if first is None:
                    first = it[2].decode("latin-1")
            else:
                kept.append(it)
        if first is not None:
            self.fields[:] = kept
        return first

    # --- wire --------------------------------------------------------------------
    def encode_into(self, out: list) -> None:
        """Append the fields to ``out`` as HTTP/1 lines, piece by piece (the caller
        joins the list once: no intermediate bytes per field)."""
        for _, wire, value in self.fields:
            out.append(wire)
            out.append(b": ")
            out.append(value)
            out.append(b"\r\n")


class Version:
    """HTTP versions as (major, minor) pairs."""

    HTTP_10 = (1, 0)
    HTTP_11 = (1, 1)
    HTTP_2 = (2, 0)


def _version_bytes(v: tuple[int, int]) -> bytes:
    if v == (1, 1):
        return b"HTTP/1.1"
    if v == (1, 0):
        return b"HTTP/1.0"
    return b"HTTP/%d.%d" % v


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")}


class _Message:
    """What request and response headers share."""

    __slots__ = ("headers", "version")

    def insert_header(self, name: BytesLike, value: BytesLike) -> None:
        """Set a header, replacing its previous values."""
        self.headers.insert(name, value)

    def append_header(self, name: BytesLike, value: BytesLike) -> None:
        """Add one more value of a header."""
        self.headers.append(name, value)

    def remove_header(self, name: BytesLike) -> Optional[str]:
        """Remove a header; return its first value, or None if absent."""
        return self.headers.remove(name)

    def get_header(self, name: BytesLike) -> Optional[str]:
        return self.headers.get(name)

    def set_version(self, version: tuple[int, int]) -> None:
        self.version = version


class RequestHeader(_Message):
    """The head of an HTTP request: method, target, version and header fields.

    ``uri`` is the request target as text (``/path?query``); ``path`` and ``query``
    are its two halves. ``raw_path`` is the target as received, in bytes, and
    ``method_bytes`` the method (change it with ``set_method``).
    """

    __slots__ = ("method_bytes", "raw_path", "_uri_cache")

    def __init__(self, method: bytes, raw_path: bytes, version: tuple[int, int] = (1, 1),
                 headers: Optional[HeaderMap] = None) -> None:
        self.method_bytes = method
        self.raw_path = raw_path
        self.version = version
        self.headers = headers if headers is not None else HeaderMap()
        self._uri_cache: Optional[tuple[str, str, Optional[str]]] = None

    @classmethod
    def build(cls, method: BytesLike, path: BytesLike, size_hint: Optional[int] = None,
              version: tuple[int, int] = (1, 1)) -> "RequestHeader":
        """A new request head with no header fields (``size_hint`` is accepted for symmetry)."""
        return cls(_to_bytes(method).upper(), _checked_value(b":path", path), version)

    # --- method ---
    @property
    def method(self) -> str:
        m = self.method_bytes
        return _METHODS.get(m) or m.decode("latin-1")

    def set_method(self, method: BytesLike) -> None:
        m = _to_bytes(method).upper()
        if not m or not _TOKEN.issuperset(m):
            raise ValueError(f"invalid method {m!r}")
        self.method_bytes = m

    # --- target ---
    def _split(self) -> tuple[str, str, Optional[str]]:
        c = self._uri_cache
        if c is None:
            uri = self.raw_path.decode("latin-1")
            path, sep, query = uri.partition("?")
            c = self._uri_cache = (uri, path, query if sep else None)
        return c

    @property
    def uri(self) -> str:
        return self._split()[0]

    @property
    def path(self) -> str:
        return self._split()[1]

    @property
    def query(self) -> Optional[str]:
        return self._split()[2]

    def set_uri(self, uri: BytesLike) -> None:
        """Replace the request target (path and query)."""
        b = _checked_value(b":path", uri)
        if not b or b" " in b:
            raise ValueError(f"invalid request target {b!r}")
        self.raw_path = b
        self._uri_cache = None

    def copy(self) -> "RequestHeader":
        return RequestHeader(self.method_bytes, self.raw_path, self.version, HeaderMap(self.headers.fields[:]))

    def to_h1_bytes(self) -> bytes:
        line_end = b" HTTP/1.1\r\n" if self.version == (1, 1) else b" " + _version_bytes(self.version) + b"\r\n"
        if _COMPILED and type(self.method_bytes) is bytes and type(self.raw_path) is bytes:
            # (header.pxd: the head's size counted, its pieces copied once)
            head = _head_bytes(self.method_bytes, b" ", self.raw_path, line_end, self.headers.fields)
            if head is not None:
                return head
        out = [self.method_bytes, b" ", self.raw_path, line_end]
        self.headers.encode_into(out)
        out.append(b"\r\n")
        return b"".join(out)

    def __repr__(self) -> str:
        return f"RequestHeader({self.method} {self.uri} {self.headers.items()!r})"


class ResponseHeader(_Message):
    """The head of an HTTP response: status, reason and header fields."""

    __slots__ = ("status", "reason")

    def __init__(self, status: int, version: tuple[int, int] = (1, 1),
                 headers: Optional[HeaderMap] = None, reason: Optional[bytes] = None) -> None:
        self.status = status
        self.version = version
        self.headers = headers if headers is not None else HeaderMap()
        self.reason = reason

    @classmethod
    def build(cls, status: int, size_hint: Optional[int] = None,
              version: tuple[int, int] = (1, 1)) -> "ResponseHeader":
        """A new response head with no header fields."""
        if not 100 <= int(status) <= 999:
            raise ValueError(f"invalid status code {status}")
        return cls(int(status), version)

    def set_status(self, status: int) -> None:
        if not 100 <= int(status) <= 999:
            raise ValueError(f"invalid status code {status}")
        self.status = int(status)
        self.reason = None

    def set_reason_phrase(self, reason: Optional[BytesLike]) -> None:
        self.reason = None if reason is None else _checked_value(b":reason", reason)

    def copy(self) -> "ResponseHeader":
        return ResponseHeader(self.status, self.version, self.headers.copy(), self.reason)

    def status_line(self) -> bytes:
        if self.reason is None and self.version == (1, 1):
            line = _STATUS_LINES_11.get(self.status)
            if line is not None:
                return line
        reason = self.reason if self.reason is not None else reason_phrase(self.status).encode()
        return _version_bytes(self.version) + b" %d " % self.status + reason + b"\r\n"

    def to_h1_bytes(self) -> bytes:
        line = self.status_line()
        if _COMPILED:  # (header.pxd: the head's size counted, its pieces copied once)
            head = _head_bytes(line, b"", b"", b"", self.headers.fields)
            if head is not None:
                return head
        out = [line]
        self.headers.encode_into(out)
        out.append(b"\r\n")
        return b"".join(out)

    def __repr__(self) -> str:
        return f"ResponseHeader({self.status} {self.headers.items()!r})"


def reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _build_status_lines() -> dict[int, bytes]:
    from http import HTTPStatus

    return {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


_STATUS_LINES_11 = _build_status_lines()
