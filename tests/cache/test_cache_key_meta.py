"""Key hashing exactly as Pingora's (BLAKE2b-128), Vary variance, and meta serialisation."""

import hashlib

import pytest

from propylon import HeaderMap, RequestHeader, ResponseHeader
from propylon.cache import (CacheKey, CacheMeta, VarianceBuilder, default_cache_key, variance_from_vary,
                            vary_names)


def b2(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def test_primary_hash_is_blake2b_128_of_namespace_then_primary():
    key = CacheKey("example.com", "/a?b=1")
    assert key.primary_hash() == b2(b"example.com/a?b=1").hex()
    assert len(key.primary_hash()) == 32 and key.primary_hash() == key.primary_hash().lower()
    assert key.combined() == key.primary_hash()  # no variance


def test_combined_hash_adds_the_variance():
    key = CacheKey("ns", "p")
    v = b2(b"x")
    key.set_variance(v)
    assert key.combined() == b2(b2(b"nsp") + v).hex()
    assert key.primary_hash() == b2(b"nsp").hex()


def test_user_tag_not_hashed():
    assert CacheKey("ns", "p", user_tag="a").combined() == CacheKey("ns", "p", user_tag="b").combined()


def test_variance_must_be_a_hash():
    with pytest.raises(ValueError, match="16-byte"):
        CacheKey("ns", "p").set_variance(b"short")


def test_variance_builder_sorted_with_nul_separators():
    vb = VarianceBuilder()
    vb.add_value("b", "2")
    vb.add_value("a", "1")
    assert vb.finalize() == b2(b"a\x001\x00b\x002\x00")
    assert VarianceBuilder().finalize() is None


def test_variance_from_vary_uses_named_request_fields():
    gzip = HeaderMap.from_pairs([("Accept-Encoding", "gzip"), ("User-Agent", "x")])
    br = HeaderMap.from_pairs([("Accept-Encoding", "br"), ("User-Agent", "y")])
    vary = [b"Accept-Encoding"]
    assert variance_from_vary(vary, gzip) != variance_from_vary(vary, br)
    # A field not named by Vary does not split variants.
    same = HeaderMap.from_pairs([("Accept-Encoding", "gzip"), ("User-Agent", "z")])
    assert variance_from_vary(vary, gzip) == variance_from_vary(vary, same)
    # Absent is its own variant; order and case of Vary names do not matter.
    assert variance_from_vary(vary, HeaderMap()) not in (variance_from_vary(vary, gzip), None)
    assert variance_from_vary([b"user-agent, ACCEPT-ENCODING"], gzip) == variance_from_vary([b"Accept-Encoding", b"User-Agent"], gzip)
    assert variance_from_vary([], gzip) is None


def test_vary_star():
    assert vary_names([b"accept, *"]) is None
    assert vary_names([b"B, a", b"a"]) == [b"a", b"b"]


def test_meta_round_trip():
    h = ResponseHeader(200)
    h.append_header("Content-Type", "text/plain")
    h.append_header("Set-Cookie", "a=1")
    h.append_header("Set-Cookie", "b=2")
    h.set_reason_phrase(b"Fine")
    meta = CacheMeta(1000.5, 990.25, 995.0, 30, 60, h, b2(b"v"))
    data = meta.to_bytes()
    back = CacheMeta.from_bytes(data)
    for field in ("fresh_until", "created", "updated", "stale_while_revalidate_sec", "stale_if_error_sec", "variance"):
        assert getattr(back, field) == getattr(meta, field), field
    assert back.header.headers.raw_items() == h.headers.raw_items()
    assert back.header.reason == b"Fine" and back.header.status == 200
    # Compact: fixed part + fields, no field names repeated.
    assert len(data) < 48 + 16 + 6 + sum(6 + len(n) + len(v) for n, v in h.headers.raw_items()) + 10


def test_meta_rejects_malformed_bytes():
    data = CacheMeta(1.0, 1.0, 1.0, 0, 0, ResponseHeader(204)).to_bytes()
    for bad in (data[:-1], data + b"x", b"XXXX" + data[4:], b""):
        with pytest.raises(ValueError):
            CacheMeta.from_bytes(bad)


def test_meta_tags_from_cache_tag_and_surrogate_key():
    h = ResponseHeader(200)
    h.append_header("Cache-Tag", "product-1, catalogue")
    h.append_header("Surrogate-Key", "catalogue  user-9")
    assert CacheMeta(0, 0, 0, 0, 0, h).tags() == [b"product-1", b"catalogue", b"user-9"]


def test_default_key_is_host_and_target_whatever_the_method():
    get = RequestHeader.build("GET", "/a/b?x=1")
    get.append_header("Host", "Example.COM")
    head = RequestHeader.build("HEAD", "/a/b?x=1")
    head.append_header("host", "example.com")
    assert default_cache_key(get) == CacheKey("example.com", "/a/b?x=1")
    assert default_cache_key(get).combined() == default_cache_key(head).combined()
    other = RequestHeader.build("GET", "/a/b?x=2")
    other.append_header("Host", "example.com")
    assert default_cache_key(other).combined() != default_cache_key(get).combined()
    assert default_cache_key(RequestHeader.build("GET", "/")).namespace == ""
