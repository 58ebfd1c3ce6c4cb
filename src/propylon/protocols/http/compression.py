"""Response compression, as Pingora's response-compression module does it.

A response is compressed for the client with gzip (zlib), brotli or zstd, the
coding chosen from the request's ``Accept-Encoding``; optionally a body the origin
sent compressed is decoded first, so the body filters see plain bytes. What to do is
decided once, from the final response head (after ``response_filter``):

* nothing happens to HEAD answers, 1xx/204/304/206 responses, ``Content-Range``
  bodies or responses marked ``Cache-Control: no-transform``;
* a response is *compressible* when its ``Content-Type`` matches
  :attr:`CompressionOptions.types` and its ``Content-Length`` (if known) is at least
  :attr:`CompressionOptions.min_length`; such a response gets
  ``Vary: Accept-Encoding``, whether or not this client receives it compressed;
* the coding is the enabled one (level > 0) the client weighs highest; when weights
  tie, :attr:`CompressionOptions.prefer` decides. ``q=0`` refuses a coding; ``*``
  stands for the codings the client did not name; if the client weighs ``identity``
  above every coding we could send, the body goes out as it is. No
  ``Accept-Encoding`` at all means no compression (as nginx and Pingora do);
* a transformed response loses ``Content-Length`` (the client's protocol frames
  the body: chunked for HTTP/1.1, DATA frames for HTTP/2) and ``Accept-Ranges``;
  its strong ``ETag`` becomes weak and an invalid one is dropped, as nginx does
  (unless ``preserve_etag``).

Bodies are coded piece by piece as they arrive: each piece the origin delivers is
compressed and flushed at once (a sync flush keeps the compression window, so the
cost is a few bytes per piece, and a slow stream such as server-sent events is not
held back), and decoding yields bounded pieces however much the input expands.

The engine calls :func:`response_coding` only when the request has compression
options (``Session.compression``); it returns the downstream session and upstream
exchange to relay through, wrapped only when there is something to code.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Union

import brotli
import zstandard

from ...errors import Error, ErrorType
from .header import HeaderMap, RequestHeader, ResponseHeader
from .interfaces import DownstreamSession, UpstreamExchange

__all__ = ["COMPRESSION_ERROR", "CompressionOptions", "DEFAULT_TYPES", "choose_encoding",
           "parse_accept_encoding", "response_coding"]

#: The error kind of a body that cannot be decoded (or encoded).
COMPRESSION_ERROR = ErrorType.custom("CompressionError")

#: Media types compressed by default: Pingora's allow-list (``text/``, ``application/``,
#: ``font/``, and the image types that are text or uncompressed).
DEFAULT_TYPES = ("text/*", "application/*", "font/*", "image/svg+xml", "image/x-icon",
                 "image/vnd.microsoft.icon", "image/bmp", "binary/octet-stream")

# Matched by a wildcard but already compressed (or framed by their own protocol):
# compressing them again costs CPU for nothing. Types naming "zip" are skipped too.
_INCOMPRESSIBLE = frozenset((
    "application/zstd", "application/x-xz", "application/x-7z-compressed", "application/vnd.rar",
    "application/x-rar-compressed", "application/x-brotli", "application/pdf", "application/wasm+br",
    "application/grpc", "application/grpc+proto", "application/grpc-web", "application/grpc-web+proto",
    "application/ogg", "font/woff", "font/woff2",
))

# Highest level of each coding. zstd stops at 19: above it the window outgrows the
# 8 MB that RFC 9659 lets an HTTP client refuse.
_MAX_LEVEL = {"gzip": 9, "br": 11, "zstd": 19}
_CODINGS = tuple(_MAX_LEVEL)
_LEVEL_FIELD = {"gzip": "gzip_level", "br": "brotli_level", "zstd": "zstd_level"}

# Decoded output is handed on in pieces of at most this size.
_PIECE = 256 * 1024
# zstandard has no output bound, so zstd input is fed in slices this small: one
# slice can expand to at most a few MB whatever the stream holds.
_ZSTD_SLICE = 128


def _level(name: str, value: object, top: int) -> int:
    if type(value) is not int or not 0 <= value <= top:
        raise ValueError(f"CompressionOptions.{name} must be an integer 0..{top} (0 = off), got {value!r}")
    return value


@dataclass(frozen=True)
class CompressionOptions:
    """How responses are compressed; per service (``http_proxy_service(...,
    compression=...)``) and per request (``session.adjust_compression(...)``).

    A level of 0 turns that coding off. ``CompressionOptions.enable(6)`` sets every
    coding to one level (clamped to each coding's maximum), like Pingora's
    ``ResponseCompressionBuilder::enable``.
    """

    #: gzip level, 1 (fastest) to 9 (smallest); 0 = off.
    gzip_level: int = 0
    #: brotli quality, 1 to 11; 0 = off.
    brotli_level: int = 0
    #: zstd level, 1 to 19; 0 = off.
    zstd_level: int = 0
    #: Responses with a smaller ``Content-Length`` are sent as they are (nginx's
    #: ``gzip_min_length``; 20 as in nginx and Pingora).
    min_length: int = 20
    #: Media types to compress: ``type/subtype``, ``type/*`` or ``*`` (any).
    types: tuple[str, ...] = DEFAULT_TYPES
    #: Which coding wins when the client weighs several equally.
    prefer: tuple[str, ...] = ("zstd", "br", "gzip")
    #: Decode an origin's gzip/br/zstd body when the client does not accept that
    #: coding (or sends no ``Accept-Encoding``) or the proxy has response body
    #: filters (which then see plain bytes); the decoded body is compressed again
    #: for the client when it asks.
    decompress_upstream: bool = False
    #: Keep a strong ``ETag`` on a transformed response (default: make it weak).
    preserve_etag: bool = False
    #: The enabled codings, best first: ((token, level), ...). Derived.
    enabled: tuple[tuple[str, int], ...] = field(init=False, repr=False, compare=False)
    # Accept-Encoding value -> chosen coding: clients send few distinct values.
    _choices: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        levels = {c: _level(_LEVEL_FIELD[c], getattr(self, _LEVEL_FIELD[c]), _MAX_LEVEL[c]) for c in _CODINGS}
        if type(self.min_length) is not int or self.min_length < 0:
            raise ValueError(f"CompressionOptions.min_length must be an integer >= 0, got {self.min_length!r}")
        if isinstance(self.types, str):
            raise ValueError("CompressionOptions.types must be a sequence of media types, not one string")
        types = tuple(str(t).strip().lower() for t in self.types)
        for t in types:
            if t != "*" and (t.count("/") != 1 or not t.split("/")[0] or not t.split("/")[1]):
                raise ValueError(f"CompressionOptions.types: {t!r} is not 'type/subtype', 'type/*' or '*'")
        prefer = tuple(str(p).strip().lower() for p in self.prefer)
        for p in prefer:
            if p not in _MAX_LEVEL:
                raise ValueError(f"CompressionOptions.prefer: unknown coding {p!r} (use gzip, br, zstd)")
        if len(set(prefer)) != len(prefer):
            raise ValueError(f"CompressionOptions.prefer names a coding twice: {prefer!r}")
        prefer += tuple(c for c in _CODINGS if c not in prefer)
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "prefer", prefer)
        object.__setattr__(self, "enabled", tuple((c, levels[c]) for c in prefer if levels[c] > 0))
        object.__setattr__(self, "_choices", {})

    @classmethod
    def enable(cls, level: int, **fields: object) -> "CompressionOptions":
        """Every coding at ``level`` (clamped to its maximum; 0 = all off)."""
        return cls(**_all_levels(level), **fields)  # type: ignore[arg-type]

    def adjusted(self, level: Optional[int] = None, **fields: object) -> "CompressionOptions":
        """A copy with ``level`` applied to every coding and ``fields`` changed."""
        if level is not None:
            fields = {**_all_levels(level), **fields}
        return dataclasses.replace(self, **fields)  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        """Anything to do at all: a coding enabled or upstream decoding on."""
        return bool(self.enabled) or self.decompress_upstream


def _all_levels(level: int) -> dict[str, int]:
    if type(level) is not int or level < 0:
        raise ValueError(f"compression level must be an integer >= 0, got {level!r}")
    return {_LEVEL_FIELD[c]: min(level, top) for c, top in _MAX_LEVEL.items()}


# --- negotiation ---------------------------------------------------------------------------
def _weight(text: str) -> Optional[float]:
    """An RFC 9110 weight (``0`` to ``1``, three decimals at most), or None if invalid."""
    if not text or len(text) > 5 or text[0] not in "01":
        return None
    decimals = text[2:]
    if len(text) > 1 and (text[1] != "." or (decimals and not decimals.isdigit())):
        return None
    q = float(text)
    return q if q <= 1 else None


def parse_accept_encoding(value: Optional[bytes]) -> dict[str, float]:
    """``Accept-Encoding`` as {coding: weight}, codings lowercased (``x-gzip`` is
    ``gzip``). Malformed members are ignored; a coding named twice keeps its first weight."""
    weights: dict[str, float] = {}
    if not value:
        return weights
    for member in value.decode("latin-1").split(","):
        coding, _, params = member.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        if coding == "x-gzip":
            coding = "gzip"
        q: Optional[float] = 1.0
        for param in params.split(";") if params else ():
            name, _, val = param.partition("=")
            if name.strip().lower() == "q":
                q = _weight(val.strip())
        if q is not None and coding not in weights:
            weights[coding] = q
    return weights


_CHOICES_KEPT = 64


def choose_encoding(accept: Optional[bytes], options: CompressionOptions) -> Optional[str]:
    """The coding to send for ``Accept-Encoding: accept``, or None for identity."""
    if accept is None:
        return None
    choices = options._choices
    try:
        return choices[accept]
    except KeyError:
        coding = _choose(accept, options)
        if len(choices) < _CHOICES_KEPT:
            choices[accept] = coding
        return coding


def _choose(accept: bytes, options: CompressionOptions) -> Optional[str]:
    weights = parse_accept_encoding(accept)
    star = weights.get("*")
    best, best_q = None, 0.0
    for coding, _ in options.enabled:
        q = weights.get(coding, star)
        if q is not None and q > best_q:
            best, best_q = coding, q
    identity = weights.get("identity", star)
    if best is None or (identity is not None and identity > best_q):
        return None
    return best


def _accepts(accept: Optional[bytes], coding: str) -> bool:
    if accept is None:
        # RFC 9110 12.5.3 lets a server send any coding then, but does not promise
        # the client can read it: decode (as Pingora does).
        return False
    weights = parse_accept_encoding(accept)
    q = weights.get(coding, weights.get("*"))
    return q is not None and q > 0


# --- response head rules -------------------------------------------------------------------
def _joined(headers: HeaderMap, name: bytes) -> Optional[bytes]:
    values = headers.get_all_bytes(name)
    if not values:
        return None
    return values[0] if len(values) == 1 else b", ".join(values)


def _tokens(value: Optional[bytes]) -> list[bytes]:
    return [t.strip().lower() for t in value.split(b",")] if value else []


def _no_transform(headers: HeaderMap) -> bool:
    return any(t == b"no-transform" for t in _tokens(_joined(headers, b"cache-control")))


def _type_allowed(content_type: Optional[bytes], types: tuple[str, ...]) -> bool:
    if not content_type:
        return False  # unknown content: leave it alone, as Pingora does
    media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    if media in types:
        return True
    if "zip" in media or media in _INCOMPRESSIBLE:
        return False
    prefix = media.split("/", 1)[0] + "/*"
    return prefix in types or "*" in types


def _known_length(headers: HeaderMap) -> Optional[int]:
    cl = headers.get_bytes(b"content-length")
    return int(cl) if cl is not None and cl.strip().isdigit() else None


def _add_vary(headers: HeaderMap) -> None:
    existing = _joined(headers, b"vary")
    tokens = _tokens(existing)
    if b"*" in tokens or b"accept-encoding" in tokens:
        return
    headers.insert(b"Vary", existing + b", Accept-Encoding" if existing else b"Accept-Encoding")


def _streamed(headers: HeaderMap, preserve_etag: bool) -> None:
    """The head of a body whose bytes change on the way: no known length, no ranges."""
    headers.remove(b"content-length")
    headers.remove(b"accept-ranges")
    if preserve_etag:
        return
    etag = headers.get_bytes(b"etag")
    if etag is None or etag.startswith(b"W/"):
        return
    if etag.startswith(b'"'):
        headers.insert(b"ETag", b"W/" + etag)  # other bytes now: at most weakly equal
    else:
        headers.remove(b"etag")  # not a valid entity tag: nothing to weaken


# --- coders ---------------------------------------------------------------------------------
class _GzipEncoder:
    __slots__ = ("_z",)

    def __init__(self, level: int, size: Optional[int]) -> None:
        # A body of known small size gets a smaller window and hash (as nginx does):
        # less memory to set up per response, the same output.
        wbits, mem = 15, 8
        if size is not None:
            while wbits > 9 and size < (1 << (wbits - 1)) - 262:
                wbits -= 1
                mem -= 1
        self._z = zlib.compressobj(level, zlib.DEFLATED, 16 + wbits, max(1, mem))  # 16+: gzip wrapper

    def encode(self, data: bytes) -> bytes:
        z = self._z
        return z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._z.flush(zlib.Z_FINISH)


class _BrotliEncoder:
    __slots__ = ("_b",)

    def __init__(self, level: int, size: Optional[int]) -> None:
        lgwin = 22 if size is None else max(10, min(22, size.bit_length()))
        self._b = brotli.Compressor(quality=level, lgwin=lgwin)

    def encode(self, data: bytes) -> bytes:
        b = self._b
        return b.process(data) + b.flush()

    def finish(self) -> bytes:
        return self._b.finish()


class _ZstdEncoder:
    __slots__ = ("_z",)

    def __init__(self, level: int, size: Optional[int]) -> None:
        self._z = zstandard.ZstdCompressor(level=level).compressobj()

    def encode(self, data: bytes) -> bytes:
        z = self._z
        return z.compress(data) + z.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self) -> bytes:
        return self._z.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


_ENCODERS: dict[str, Callable[[int, Optional[int]], Union[_GzipEncoder, _BrotliEncoder, _ZstdEncoder]]] = {
    "gzip": _GzipEncoder, "br": _BrotliEncoder, "zstd": _ZstdEncoder}


class _GzipDecoder:
    """gzip, member after member, at most ``_PIECE`` bytes out per step."""

    __slots__ = ("_z", "_in")

    def __init__(self) -> None:
        self._z = zlib.decompressobj(31)
        self._in = b""

    def feed(self, data: bytes) -> None:
        self._in = self._in + data if self._in else data

    def pending(self) -> bool:
        return bool(self._in)

    def step(self) -> bytes:
        z = self._z
        out = z.decompress(self._in, _PIECE)
        self._in = z.unconsumed_tail
        if z.eof:
            rest = z.unused_data.lstrip(b"\x00")  # some writers pad between members
            self._z = zlib.decompressobj(31)
            self._in = rest + self._in
        return out


class _BrotliDecoder:
    __slots__ = ("_b", "_in")

    def __init__(self) -> None:
        self._b = brotli.Decompressor()
        self._in = b""

    def feed(self, data: bytes) -> None:
        self._in = self._in + data if self._in else data

    def pending(self) -> bool:
        return bool(self._in) or not self._b.can_accept_more_data()

    def step(self) -> bytes:
        b = self._b
        if not b.can_accept_more_data():
            return b.process(b"", output_buffer_limit=_PIECE)
        data, self._in = self._in, b""
        return b.process(data, output_buffer_limit=_PIECE)


class _ZstdDecoder:
    __slots__ = ("_z", "_in", "_pos")

    def __init__(self) -> None:
        # RFC 9659: an HTTP zstd window beyond 8 MB may be refused; it bounds memory too.
        self._z = zstandard.ZstdDecompressor(max_window_size=1 << 23).decompressobj(read_across_frames=True)
        self._in = memoryview(b"")
        self._pos = 0

    def feed(self, data: bytes) -> None:
        rest = self._in[self._pos:]
        self._in = memoryview(bytes(rest) + data if rest else data)
        self._pos = 0

    def pending(self) -> bool:
        return self._pos < len(self._in)

    def step(self) -> bytes:
        z, buf, pos, end = self._z, self._in, self._pos, len(self._in)
        out = []
        size = 0
        while pos < end and size < _PIECE:
            piece = z.decompress(buf[pos:pos + _ZSTD_SLICE])
            pos += _ZSTD_SLICE
            if piece:
                out.append(piece)
                size += len(piece)
        self._pos = min(pos, end)
        return b"".join(out)


_DECODERS: dict[str, Callable[[], Union[_GzipDecoder, _BrotliDecoder, _ZstdDecoder]]] = {
    "gzip": _GzipDecoder, "x-gzip": _GzipDecoder, "br": _BrotliDecoder, "zstd": _ZstdDecoder}


def _coding_failed(what: str, exc: BaseException) -> Error:
    return Error.because(COMPRESSION_ERROR, what, exc)


# --- the two sides, wrapped ------------------------------------------------------------------
class EncodingDownstream:
    """A downstream session whose response body is compressed on the way out."""

    __slots__ = ("_ds", "_enc", "coding")

    def __init__(self, ds: DownstreamSession, encoder: _GzipEncoder | _BrotliEncoder | _ZstdEncoder,
                 coding: str) -> None:
        self._ds = ds
        self._enc = encoder
        self.coding = coding

    def write_header(self, resp: ResponseHeader, end_of_stream: bool = False, hold: bool = False) -> None:
        if end_of_stream:  # an empty body still needs a valid (empty) stream of the coding
            self._ds.write_header(resp, hold=True)
            self.finish()
        else:
            self._ds.write_header(resp, hold=hold)

    def write_body(self, data: bytes) -> None:
        if data:
            try:
                out = self._enc.encode(data)
            except Exception as exc:
                raise _coding_failed(f"{self.coding} encoding failed", exc).into_in() from None
            if out:
                self._ds.write_body(out)

    def write_head_and_body(self, resp: ResponseHeader, body: bytes, h1_head: Optional[bytes] = None) -> None:
        # The body is coded on the way: a head serialised before the coding was
        # chosen does not describe it.
        self.write_header(resp, hold=True)
        self.write_body(body)

    def finish(self, trailers: Optional[HeaderMap] = None) -> None:
        ds = self._ds
        if not ds.finished:
            tail = self._enc.finish()
            if tail:
                ds.write_body(tail)
        ds.finish(trailers)

    @property
    def write_blocked(self) -> bool:
        return self._ds.write_blocked

    @property
    def closed(self) -> bool:
        return self._ds.closed

    def drain(self) -> Awaitable[None]:
        return self._ds.drain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ds, name)


class DecodingExchange:
    """An upstream exchange whose response body is decoded as it is read."""

    __slots__ = ("_conn", "_dec", "coding")

    def __init__(self, conn: UpstreamExchange, decoder: _GzipDecoder | _BrotliDecoder | _ZstdDecoder,
                 coding: str) -> None:
        self._conn = conn
        self._dec = decoder
        self.coding = coding

    def _step(self) -> bytes:
        try:
            return self._dec.step()
        except Exception as exc:
            raise _coding_failed(f"the origin's {self.coding} body cannot be decoded", exc).into_up() from None

    def take_body(self) -> Optional[bytes]:
        dec = self._dec
        if not dec.pending():
            data = self._conn.take_body()
            if not data:
                return data  # b"": nothing yet; None: the end
            dec.feed(data)
        return self._step()

    async def read_body(self) -> Optional[bytes]:
        dec = self._dec
        while True:
            if dec.pending():
                out = self._step()
                if out:
                    return out
                continue
            data = await self._conn.read_body()
            if data is None:
                return None
            dec.feed(data)

    def body_ready(self) -> bool:
        return self._dec.pending() or self._conn.body_ready()

    def at_end(self) -> bool:
        return not self._dec.pending() and self._conn.at_end()

    @property
    def trailers(self) -> Optional[HeaderMap]:
        return self._conn.trailers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def response_coding(options: CompressionOptions, req: RequestHeader, resp: ResponseHeader,
                    ds: DownstreamSession, conn: UpstreamExchange,
                    filtered: bool) -> tuple[DownstreamSession, UpstreamExchange]:
    """Decide how this response is coded and adjust its head; return the downstream
    session and upstream exchange to relay through (``ds``/``conn`` themselves when
    the body passes untouched). ``filtered``: the proxy has response body filters."""
    status = resp.status
    if ds.is_head or status < 200 or status in (204, 206, 304) or not options.active:
        return ds, conn
    h = resp.headers
    if b"content-range" in h or _no_transform(h):
        return ds, conn
    accept = _joined(req.headers, b"accept-encoding")
    transformed = False
    ce = _joined(h, b"content-encoding")
    if ce is not None:
        coding = ce.strip().lower().decode("latin-1")
        if coding not in ("", "identity"):
            if not options.decompress_upstream or coding not in _DECODERS:
                return ds, conn
            _add_vary(h)  # whether we decode depends on what the client accepts
            if not filtered and _accepts(accept, coding):
                return ds, conn
            conn = DecodingExchange(conn, _DECODERS[coding](), coding)
            h.remove(b"content-encoding")
            transformed = True
    # A decoded body's length is unknown until it is decoded.
    size = None if transformed else _known_length(h)
    if (options.enabled and (size is None or size >= options.min_length)
            and _type_allowed(h.get_bytes(b"content-type"), options.types)):
        _add_vary(h)
        coding = choose_encoding(accept, options)
        if coding is not None:
            level = next(lvl for c, lvl in options.enabled if c == coding)
            ds = EncodingDownstream(ds, _ENCODERS[coding](level, size), coding)
            h.insert(b"Content-Encoding", coding.encode())
            transformed = True
    if transformed:
        _streamed(h, options.preserve_etag)
    return ds, conn
