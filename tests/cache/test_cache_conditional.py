"""Request-side cache rules fed real header bytes: the upstream request of a miss,
client conditionals, and byte ranges."""

import email.utils

from propylon import RequestHeader, ResponseHeader
from propylon.cache.conditional import (RangeKind, apply_range_headers, multipart_head_and_parts,
                                        not_modified, range_request, to_304, upstream_request_for_cache)
from propylon.cache.meta import CacheMeta


def req(method: str = "GET", *fields) -> RequestHeader:
    r = RequestHeader.build(method, "/x")
    for n, v in fields:
        r.append_header(n, v)
    return r


def resp(*fields, status: int = 200) -> ResponseHeader:
    r = ResponseHeader(status)
    for n, v in fields:
        r.append_header(n, v)
    return r


def date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


def test_upstream_request_head_as_get_conditionals_removed_validators_added():
    r = req("HEAD", ("Range", "bytes=0-1"), ("If-None-Match", '"c"'), ("If-Modified-Since", date(0)),
            ("If-Match", "*"), ("If-Unmodified-Since", date(0)), ("If-Range", '"c"'), ("Accept", "*/*"))
    upstream_request_for_cache(r)
    assert r.method == "GET" and r.headers.items() == [("Accept", "*/*")]
    stale = CacheMeta(0, 0, 0, 0, 0, resp(("ETag", '"v1"'), ("Last-Modified", date(1000))))
    r2 = req("GET", ("If-None-Match", '"client"'))
    upstream_request_for_cache(r2, stale)
    assert r2.headers.get("if-none-match") == '"v1"'
    assert r2.headers.get("if-modified-since") == date(1000)


def test_if_none_match_weak_compare_and_star():
    cached = resp(("ETag", 'W/"abc"'), ("Last-Modified", date(1000)))
    assert not_modified(req("GET", ("If-None-Match", '"abc"')), cached)
    assert not_modified(req("GET", ("If-None-Match", '"x", W/"abc"')), cached)
    assert not_modified(req("GET", ("If-None-Match", "*")), cached)
    # If-None-Match present and not matching: If-Modified-Since is ignored.
    assert not not_modified(req("GET", ("If-None-Match", '"zzz"'), ("If-Modified-Since", date(2000))), cached)


def test_if_modified_since():
    cached = resp(("Last-Modified", date(1000)))
    assert not_modified(req("GET", ("If-Modified-Since", date(1000))), cached)
    assert not_modified(req("HEAD", ("If-Modified-Since", date(5000))), cached)
    assert not not_modified(req("GET", ("If-Modified-Since", date(999))), cached)
    assert not not_modified(req("POST", ("If-Modified-Since", date(5000))), cached)
    assert not not_modified(req("GET", ("If-Modified-Since", "garbage")), cached)


def test_only_a_200_becomes_304_and_to_304_drops_body_fields():
    assert not not_modified(req("GET", ("If-None-Match", "*")), resp(status=404))
    r = to_304(resp(("Content-Length", "5"), ("Content-Type", "text/plain"), ("ETag", '"e"')))
    assert r.status == 304 and r.headers.items() == [("ETag", '"e"')]


CACHED = resp(("Content-Length", "100"), ("ETag", '"strong"'), ("Last-Modified", date(1000)),
              ("Content-Type", "text/plain"))


def test_single_range_variants():
    assert range_request(req("GET", ("Range", "bytes=0-9")), CACHED).ranges == [(0, 9)]
    assert range_request(req("GET", ("Range", "bytes=90-")), CACHED).ranges == [(90, 99)]
    assert range_request(req("GET", ("Range", "bytes=-10")), CACHED).ranges == [(90, 99)]
    assert range_request(req("GET", ("Range", "bytes=95-500")), CACHED).ranges == [(95, 99)]
    assert range_request(req("GET", ("Range", "bytes=-500")), CACHED).ranges == [(0, 99)]
    rr = range_request(req("HEAD", ("Range", "bytes=0-0")), CACHED)
    assert rr.kind is RangeKind.SINGLE


def test_multi_range_and_unsatisfiable_parts_skipped():
    rr = range_request(req("GET", ("Range", "bytes=0-9, 20-29, 500-600")), CACHED)
    assert rr.kind is RangeKind.MULTI and rr.ranges == [(0, 9), (20, 29)]


def test_invalid_and_ignored_ranges():
    assert range_request(req("GET", ("Range", "bytes=100-")), CACHED).kind is RangeKind.INVALID
    assert range_request(req("GET", ("Range", "bytes=200-300, 150-")), CACHED).kind is RangeKind.INVALID
    for value in ("bytes=0-9, 5-15", "bytes=20-29, 0-9", "items=0-1", "bytes=abc", "bytes=9-0"):
        assert range_request(req("GET", ("Range", value)), CACHED).kind is RangeKind.NONE, value
    many = "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 400, 2))
    assert range_request(req("GET", ("Range", many)), resp(("Content-Length", "1000"))).kind is RangeKind.NONE
    assert range_request(req("POST", ("Range", "bytes=0-1")), CACHED).kind is RangeKind.NONE
    assert range_request(req("GET", ("Range", "bytes=0-1")), resp()).kind is RangeKind.NONE  # no length


def test_if_range():
    ok = ("Range", "bytes=0-9")
    assert range_request(req("GET", ok, ("If-Range", '"strong"')), CACHED).kind is RangeKind.SINGLE
    assert range_request(req("GET", ok, ("If-Range", date(1000))), CACHED).kind is RangeKind.SINGLE
    assert range_request(req("GET", ok, ("If-Range", '"other"')), CACHED).kind is RangeKind.NONE
    weak = resp(("Content-Length", "100"), ("ETag", 'W/"w"'))
    assert range_request(req("GET", ok, ("If-Range", 'W/"w"')), weak).kind is RangeKind.NONE


def test_range_response_heads_and_multipart_length():
    r = CACHED.copy()
    apply_range_headers(r, range_request(req("GET", ("Range", "bytes=10-19")), CACHED), 100)
    assert r.status == 206 and r.headers.get("content-range") == "bytes 10-19/100"
    assert r.headers.get("content-length") == "10"
    r = CACHED.copy()
    apply_range_headers(r, range_request(req("GET", ("Range", "bytes=100-")), CACHED), 100)
    assert r.status == 416 and r.headers.get("content-range") == "bytes */100"
    assert r.headers.get("content-length") == "0"
    r = CACHED.copy()
    apply_range_headers(r, range_request(req("GET"), CACHED), 100)
    assert r.status == 200 and r.headers.get("accept-ranges") == "bytes"

    body = bytes(range(100))
    rr = range_request(req("GET", ("Range", "bytes=0-1, 50-52")), CACHED)
    parts, closing, total = multipart_head_and_parts(rr, 100, b"text/plain", b"BOUND")
    wire = b"".join(head + body[s:e + 1] for head, s, e in parts) + closing
    assert len(wire) == total
    assert wire == (b"\r\n--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/100\r\n\r\n\x00\x01"
                    b"\r\n--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 50-52/100\r\n\r\n234"
                    b"\r\n--BOUND--\r\n")
