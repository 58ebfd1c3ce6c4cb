"""Response compression fed bytes: Accept-Encoding negotiation, the rules that leave a
response alone, the head changes, and bodies coded piece by piece (decoded back with
the reference decoders: zlib, brotli, zstandard)."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Optional

import brotli
import pytest
import zstandard

from propylon import CompressionOptions, Error
from propylon.protocols.http.compression import (COMPRESSION_ERROR, choose_encoding,
                                                 parse_accept_encoding, response_coding)
from propylon.protocols.http.header import HeaderMap, RequestHeader, ResponseHeader

ALL = CompressionOptions.enable(5)
TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(4000))


def decode(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return brotli.decompress(data)
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


class Downstream:
    """What the engine writes to the client, recorded as bytes (the codec is under test)."""

    def __init__(self, is_head: bool = False) -> None:
        self.is_head = is_head
        self.head: Optional[ResponseHeader] = None
        self.pieces: list[bytes] = []
        self.finished = False
        self.write_blocked = False
        self.closed = False

    def write_header(self, resp, end_of_stream=False, hold=False):
        self.head = resp
        if end_of_stream:
            self.finished = True

    def write_body(self, data):
        self.pieces.append(data)

    def finish(self, trailers=None):
        self.finished = True

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


class Upstream:
    """An origin's response body, delivered piece by piece."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)
        self.trailers = None

    def take_body(self):
        return b"" if self.pieces else None

    async def read_body(self):
        return self.pieces.pop(0) if self.pieces else None

    def body_ready(self):
        return bool(self.pieces)

    def at_end(self):
        return not self.pieces


def request(accept: Optional[str] = "gzip, br, zstd") -> RequestHeader:
    req = RequestHeader.build("GET", "/")
    if accept is not None:
        req.insert_header("Accept-Encoding", accept)
    return req


def response(status: int = 200, **fields: str) -> ResponseHeader:
    resp = ResponseHeader.build(status)
    resp.insert_header("Content-Type", "text/plain; charset=utf-8")
    resp.insert_header("Content-Length", str(len(TEXT)))
    for name, value in fields.items():
        name = name.replace("_", "-")
        if value is None:
            resp.remove_header(name)
        else:
            resp.insert_header(name, value)
    return resp


def relay(options, req, resp, pieces, is_head=False, filtered=False):
    """Run the response through the coder as the engine does; return what the client got."""
    ds, conn = Downstream(is_head), Upstream(pieces)
    wds, wconn = response_coding(options, req, resp, ds, conn, filtered)

    async def run():
        wds.write_header(resp, hold=True)
        while True:
            data = await wconn.read_body()
            if data is None:
                break
            wds.write_body(data)
        wds.finish(None)

    asyncio.run(run())
    return ds, wds is not ds, wconn is not conn


# --- negotiation ---------------------------------------------------------------------------
@pytest.mark.parametrize("accept, chosen", [
    ("gzip", "gzip"),
    ("br", "br"),
    ("zstd", "zstd"),
    ("gzip, br, zstd", "zstd"),                 # a tie: the server's preference
    ("gzip;q=1, br;q=0.9", "gzip"),             # weights win over preference
    ("gzip;q=0.2, br;q=0.5, zstd;q=0.4", "br"),
    ("GZIP;Q=0.5", "gzip"),                     # case-insensitive
    ("x-gzip", "gzip"),                         # RFC 9110: x-gzip is gzip
    (" gzip ; q=0.7 , deflate", "gzip"),        # whitespace around separators
    ("gzip;q=0, br;q=0", None),                 # q=0 refuses
    ("zstd;q=0, *", "br"),                      # * covers the codings not named
    ("*;q=0", None),
    ("*", "zstd"),
    ("deflate, compress", None),                # nothing we produce
    ("", None),                                 # identity only
    ("identity", None),
    ("gzip;q=0.5, identity", None),             # identity weighed higher
    ("gzip;q=0.5, identity;q=0.5", "gzip"),     # a tie with identity: compress
    ("gzip, identity;q=0", "gzip"),
    ("*;q=0.5, gzip;q=0.3", "zstd"),            # * gives zstd 0.5
    ("*;q=0.5, gzip;q=0.3, br;q=0.3, zstd;q=0.3", None),  # identity gets the * weight
    ("gzip;q=2", None),                         # invalid weights drop the member
    ("gzip;q=0.1234", None),
    ("gzip;q=abc, br", "br"),
    ("br;q=0.8, gzip", "gzip"),
])
def test_negotiation(accept, chosen):
    assert choose_encoding(accept.encode(), ALL) == chosen


def test_no_accept_encoding_means_identity():
    assert choose_encoding(None, ALL) is None


def test_only_enabled_codings_are_offered():
    gzip_only = CompressionOptions(gzip_level=1)
    assert choose_encoding(b"zstd, br, gzip;q=0.1", gzip_only) == "gzip"
    assert choose_encoding(b"zstd, br", gzip_only) is None


def test_preference_order_is_configurable():
    opts = CompressionOptions.enable(3, prefer=("gzip", "br"))
    assert opts.prefer == ("gzip", "br", "zstd")
    assert choose_encoding(b"zstd, br, gzip", opts) == "gzip"


def test_parse_keeps_first_weight():
    assert parse_accept_encoding(b"gzip;q=0.3, gzip, br;Q=1.000") == {"gzip": 0.3, "br": 1.0}


# --- options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fields, named", [
    ({"gzip_level": 10}, "gzip_level"),
    ({"brotli_level": 12}, "brotli_level"),
    ({"zstd_level": 20}, "zstd_level"),
    ({"gzip_level": True}, "gzip_level"),
    ({"min_length": -1}, "min_length"),
    ({"types": "text/plain"}, "types"),
    ({"types": ("text",)}, "types"),
    ({"prefer": ("gzip", "deflate")}, "prefer"),
    ({"prefer": ("gzip", "gzip")}, "prefer"),
])
def test_options_name_the_bad_field(fields, named):
    with pytest.raises(ValueError, match=named):
        CompressionOptions(**fields)


def test_enable_clamps_to_each_codings_maximum():
    opts = CompressionOptions.enable(11)
    assert (opts.gzip_level, opts.brotli_level, opts.zstd_level) == (9, 11, 11)
    assert opts.enabled == (("zstd", 11), ("br", 11), ("gzip", 9))
    assert not CompressionOptions().active
    assert CompressionOptions(decompress_upstream=True).active


def test_adjusted_is_a_copy():
    base = CompressionOptions(gzip_level=1)
    changed = base.adjusted(0, brotli_level=4)
    assert base.gzip_level == 1
    assert (changed.gzip_level, changed.brotli_level, changed.zstd_level) == (0, 4, 0)


# --- the head -------------------------------------------------------------------------------
def test_compressed_head_drops_length_and_ranges_and_weakens_etag():
    resp = response(etag='"v1"', accept_ranges="bytes")
    ds, encoded, _ = relay(ALL, request("gzip"), resp, [TEXT])
    h = resp.headers
    assert encoded
    assert h.get("Content-Encoding") == "gzip"
    assert "content-length" not in h and "accept-ranges" not in h
    assert h.get("ETag") == 'W/"v1"'
    assert h.get("Vary") == "Accept-Encoding"


@pytest.mark.parametrize("etag, after", [('W/"v1"', 'W/"v1"'), ("v1", None)])
def test_weak_etag_kept_and_invalid_etag_dropped(etag, after):
    resp = response(etag=etag)
    relay(ALL, request("gzip"), resp, [TEXT])
    assert resp.headers.get("ETag") == after


def test_preserve_etag():
    resp = response(etag='"v1"')
    relay(ALL.adjusted(preserve_etag=True), request("gzip"), resp, [TEXT])
    assert resp.headers.get("ETag") == '"v1"'


@pytest.mark.parametrize("vary, merged", [
    ("Accept-Language", "Accept-Language, Accept-Encoding"),
    ("accept-encoding", "accept-encoding"),
    ("Origin, Accept-Encoding", "Origin, Accept-Encoding"),
    ("*", "*"),
])
def test_vary_merged_once(vary, merged):
    resp = response(vary=vary)
    relay(ALL, request("gzip"), resp, [TEXT])
    assert resp.headers.get_all("Vary") == [merged]


def test_vary_even_when_this_client_gets_identity():
    # A cache in front must not hand this identity answer to a gzip client, or back.
    for accept in (None, "identity", "gzip;q=0"):
        resp = response()
        ds, encoded, _ = relay(ALL, request(accept), resp, [TEXT])
        assert not encoded and ds.body == TEXT
        assert resp.headers.get("Vary") == "Accept-Encoding"
        assert resp.headers.get("Content-Length") == str(len(TEXT))


@pytest.mark.parametrize("why, resp, is_head", [
    ("already encoded", response(content_encoding="br"), False),
    ("too small", response(content_length="19"), False),
    ("no-transform", response(cache_control="public, No-Transform"), False),
    ("partial content", response(206, content_range=f"bytes 0-9/{len(TEXT)}"), False),
    ("a range of a 200", response(content_range="bytes 0-9/100"), False),
    ("HEAD", response(), True),
    ("no content", response(204), False),
    ("not modified", response(304), False),
    ("image", response(content_type="image/png"), False),
    ("zip", response(content_type="application/zip"), False),
    ("gzip type", response(content_type="application/gzip"), False),
    ("woff2", response(content_type="font/woff2"), False),
    ("grpc", response(content_type="application/grpc"), False),
    ("no type", response(content_type=None), False),
])
def test_left_alone(why, resp, is_head):
    before = resp.headers.copy()
    ds, encoded, decoded = relay(ALL, request("gzip, br, zstd"), resp, [TEXT], is_head=is_head)
    assert not encoded and not decoded, why
    assert resp.headers == before, why
    assert ds.body == TEXT


def test_min_length_is_inclusive_and_configurable():
    resp = response(content_length="20")
    assert relay(ALL, request("gzip"), resp, [TEXT[:20]])[1]
    resp = response(content_length="999")
    assert not relay(ALL.adjusted(min_length=1000), request("gzip"), resp, [TEXT[:999]])[1]


def test_unknown_length_is_compressed():
    resp = response(content_length=None)
    ds, encoded, _ = relay(ALL, request("gzip"), resp, [TEXT])
    assert encoded and gzip.decompress(ds.body) == TEXT


def test_types_list_like_nginx_gzip_types():
    plain_only = CompressionOptions(gzip_level=1, types=("text/plain",))
    assert relay(plain_only, request("gzip"), response(), [TEXT])[1]
    assert not relay(plain_only, request("gzip"), response(content_type="application/json"), [TEXT])[1]
    anything = CompressionOptions(gzip_level=1, types=("*",))
    assert relay(anything, request("gzip"), response(content_type="application/octet-stream"), [TEXT])[1]
    # Named outright, even a type a wildcard skips is compressed.
    zips = CompressionOptions(gzip_level=1, types=("application/zip",))
    assert relay(zips, request("gzip"), response(content_type="application/zip"), [TEXT])[1]


# --- bodies ---------------------------------------------------------------------------------
@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_streamed_piece_by_piece_with_a_flush_per_piece(coding):
    pieces = [TEXT[i:i + 7000] for i in range(0, len(TEXT), 7000)]
    resp = response()
    ds, encoded, _ = relay(ALL, request(coding), resp, pieces)
    assert encoded and resp.headers.get("Content-Encoding") == coding
    # Every piece went out at once (one write per piece, plus the stream's end).
    assert len(ds.pieces) == len(pieces) + 1
    assert all(ds.pieces[:-1])
    assert decode(coding, ds.body) == TEXT
    assert len(ds.body) < len(TEXT) // 10


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_each_flushed_prefix_decodes(coding):
    # A client decoding as bytes arrive sees each piece whole: nothing held back.
    resp = response(content_length=None)
    ds = Downstream()
    wds, _ = response_coding(ALL, request(coding), resp, ds, Upstream([]), False)
    wds.write_header(resp, hold=True)
    if coding == "gzip":
        d = zlib.decompressobj(31)
        feed = d.decompress
    elif coding == "br":
        feed = brotli.Decompressor().process
    else:
        feed = zstandard.ZstdDecompressor().decompressobj().decompress
    for event in (b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"):
        wds.write_body(event)
        assert feed(ds.pieces[-1]) == event


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_empty_body_is_a_valid_empty_stream(coding):
    resp = response(content_length=None)
    ds = Downstream()
    wds, _ = response_coding(ALL, request(coding), resp, ds, Upstream([]), False)
    wds.write_header(resp, end_of_stream=True)
    assert ds.finished and decode(coding, ds.body) == b""


def test_levels_per_coding():
    small = relay(CompressionOptions(gzip_level=9), request("gzip"), response(), [TEXT])[0].body
    fast = relay(CompressionOptions(gzip_level=1), request("gzip"), response(), [TEXT])[0].body
    assert gzip.decompress(small) == gzip.decompress(fast) == TEXT
    assert len(small) < len(fast)


# --- decoding the origin's body -------------------------------------------------------------
def encoded_by(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "br":
        return brotli.compress(data)
    return zstandard.ZstdCompressor().compress(data)


DECODE = CompressionOptions(decompress_upstream=True)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("accept", ["identity", "gzip;q=0, br;q=0, zstd;q=0", None])
def test_decoded_for_a_client_that_does_not_accept_it(coding, accept):
    body = encoded_by(coding, TEXT)
    resp = response(content_encoding=coding, content_length=str(len(body)), etag='"e"')
    ds, encoded, decoded = relay(DECODE, request(accept), resp, [body[:100], body[100:]])
    assert decoded and not encoded
    assert ds.body == TEXT
    h = resp.headers
    assert "content-encoding" not in h and "content-length" not in h
    assert h.get("ETag") == 'W/"e"' and h.get("Vary") == "Accept-Encoding"


def test_passed_through_when_the_client_accepts_it():
    body = encoded_by("br", TEXT)
    resp = response(content_encoding="br", content_length=str(len(body)))
    ds, encoded, decoded = relay(DECODE, request("br"), resp, [body])
    assert not decoded and not encoded and ds.body == body
    assert resp.headers.get("Content-Length") == str(len(body))


def test_decoded_for_body_filters_and_compressed_again():
    body = encoded_by("br", TEXT)
    opts = CompressionOptions(gzip_level=1, decompress_upstream=True)
    resp = response(content_encoding="br", content_length=str(len(body)))
    ds, encoded, decoded = relay(opts, request("gzip, br"), resp, [body], filtered=True)
    assert decoded and encoded
    assert resp.headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(ds.body) == TEXT


def test_not_decoded_when_off_or_unknown():
    body = encoded_by("gzip", TEXT)
    for opts, ce in ((ALL, "gzip"), (DECODE, "deflate"), (DECODE, "gzip, br")):
        resp = response(content_encoding=ce, content_length=str(len(body)))
        ds, encoded, decoded = relay(opts, request("identity"), resp, [body])
        assert not decoded and ds.body == body


def test_multi_member_gzip():
    body = gzip.compress(TEXT[:1000]) + gzip.compress(TEXT[1000:])
    resp = response(content_encoding="gzip", content_length=str(len(body)))
    assert relay(DECODE, request("identity"), resp, [body])[0].body == TEXT


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_decoding_a_bomb_yields_bounded_pieces(coding):
    # 32 MiB of zeros from a few KiB: decoded in pieces, never all at once.
    zeros = bytes(32 << 20)
    if coding == "br":
        body = brotli.compress(zeros, quality=5)
    else:
        body = encoded_by(coding, zeros)
    assert len(body) < (64 << 10)
    resp = response(content_encoding=coding, content_length=str(len(body)))
    ds, _, decoded = relay(DECODE, request("identity"), resp, [body])
    assert decoded
    assert sum(map(len, ds.pieces)) == 32 << 20
    assert max(map(len, ds.pieces)) <= 8 << 20


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_corrupt_origin_body_is_an_upstream_compression_error(coding):
    body = encoded_by(coding, TEXT)
    bad = body[:20] + bytes(b ^ 0x5A for b in body[20:200]) + body[200:]
    resp = response(content_encoding=coding, content_length=str(len(bad)))
    with pytest.raises(Error) as info:
        relay(DECODE, request("identity"), resp, [bad])
    assert info.value.etype == COMPRESSION_ERROR
    assert info.value.esource.name == "UPSTREAM"


def test_trailers_pass_through_the_encoder():
    resp = response(content_length=None)
    ds = Downstream()
    got = {}
    ds.finish = lambda trailers=None: got.setdefault("trailers", trailers)
    wds, _ = response_coding(ALL, request("gzip"), resp, ds, Upstream([]), False)
    wds.write_header(resp, hold=True)
    wds.write_body(TEXT)
    trailers = HeaderMap.from_pairs([("x-checksum", "1")])
    wds.finish(trailers)
    assert got["trailers"] is trailers and gzip.decompress(ds.body) == TEXT
