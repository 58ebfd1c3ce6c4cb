"""RFC 9111 §5.2 Cache-Control directives, parsed from real field bytes."""

import pytest

from propylon.cache import CacheControl, Cacheable
from propylon.cache.cache_control import DELTA_SECONDS_MAX


def cc(*values: bytes) -> CacheControl:
    parsed = CacheControl.parse(values)
    assert parsed is not None
    return parsed


def test_no_directives_is_none():
    assert CacheControl.parse([]) is None
    assert CacheControl.parse([b""]) is None
    assert CacheControl.parse([b" , ,"]) is None


def test_max_age_and_s_maxage_s_maxage_wins_for_freshness():
    c = cc(b"max-age=10, s-maxage=20")
    assert c.max_age() == 10 and c.s_maxage() == 20
    assert c.fresh_sec() == 20
    assert cc(b"max-age=10").fresh_sec() == 10
    assert c.is_cacheable() is Cacheable.YES


def test_quoted_delta_seconds_accepted():
    assert cc(b'max-age="30"').max_age() == 30
    assert cc(b's-maxage = "7"').s_maxage() == 7


def test_delta_seconds_overflow_saturates_and_garbage_is_absent():
    assert cc(b"max-age=99999999999999").max_age() == DELTA_SECONDS_MAX
    assert cc(b"max-age=abc").max_age() is None
    assert cc(b"max-age=-5").max_age() is None
    assert cc(b"max-age=1.5").max_age() is None
    assert cc(b"max-age").max_age() is None
    # A garbage max-age alone says nothing about cacheability.
    assert cc(b"max-age=abc").is_cacheable() is Cacheable.DEFAULT


def test_names_case_insensitive_values_kept():
    c = cc(b"Max-Age=5, PUBLIC, Private=\"Set-Cookie\"")
    assert c.max_age() == 5 and c.public
    assert c.field_names("private") == [b"set-cookie"]


def test_duplicates_later_wins_across_fields():
    assert cc(b"max-age=1, max-age=2").max_age() == 2
    assert cc(b"max-age=1", b"max-age=3").max_age() == 3


def test_semicolon_delimiter_tolerated():
    c = cc(b"max-age=5;public")
    assert c.max_age() == 5 and c.public


def test_quoted_string_with_delimiters_and_escapes():
    c = cc(b'ext="a, b; c", no-store, other="x\\"y"')
    assert c.value("ext") == b"a, b; c"
    assert c.value("other") == b'x"y'
    assert c.no_store


def test_malformed_directive_skipped_others_kept():
    c = cc(b'=bad, max-age=3, "junk, x" , public')
    assert c.max_age() == 3 and c.public


def test_no_store_not_cacheable():
    assert cc(b"no-store, max-age=60").is_cacheable() is Cacheable.NO


def test_bare_private_not_cacheable_field_list_is():
    assert cc(b"private, max-age=60").is_cacheable() is Cacheable.NO
    c = cc(b'private="set-cookie, x-user", max-age=60')
    assert not c.private
    assert c.is_cacheable() is Cacheable.YES
    assert c.field_names("private") == [b"set-cookie", b"x-user"]


def test_bare_no_cache_means_stored_but_always_stale():
    c = cc(b"no-cache, max-age=60")
    assert c.no_cache
    assert c.fresh_sec() == 0
    assert c.is_cacheable() is Cacheable.YES


def test_no_cache_with_field_list_does_not_force_revalidation():
    c = cc(b'no-cache="set-cookie", max-age=60')
    assert not c.no_cache
    assert c.fresh_sec() == 60
    assert c.listed_fields() == [b"set-cookie"]


def test_strip_listed_fields():
    from propylon import HeaderMap

    h = HeaderMap.from_pairs([("Set-Cookie", "a=1"), ("X-User", "u"), ("X-Keep", "k")])
    cc(b'private="set-cookie", no-cache="X-User", max-age=1').strip_listed_fields(h)
    assert h.items() == [("X-Keep", "k")]


@pytest.mark.parametrize("value", [b"must-revalidate", b"proxy-revalidate", b"s-maxage=10"])
def test_revalidate_directives_forbid_serving_stale(value):
    c = cc(value + b", max-age=10, stale-while-revalidate=30, stale-if-error=60")
    assert not c.serve_stale_allowed()
    assert c.stale_while_revalidate() == 30 and c.stale_if_error() == 60


def test_stale_windows_parsed():
    c = cc(b"max-age=1, stale-while-revalidate=30, stale-if-error=600")
    assert c.serve_stale_allowed()
    assert (c.stale_while_revalidate(), c.stale_if_error()) == (30, 600)


def test_public_alone_is_cacheable_without_ttl():
    c = cc(b"public")
    assert c.is_cacheable() is Cacheable.YES and c.fresh_sec() is None


def test_immutable_and_others():
    c = cc(b"max-age=31536000, immutable, no-transform")
    assert c.immutable and c.no_transform and not c.must_revalidate


def test_authorization_allowances():
    assert not cc(b"max-age=60").allow_caching_authorized_req()
    for v in (b"public", b"s-maxage=1", b"must-revalidate"):
        assert cc(v).allow_caching_authorized_req()


def test_from_headers_reads_every_field():
    from propylon import HeaderMap

    h = HeaderMap.from_pairs([("Cache-Control", "public"), ("cache-control", "max-age=9")])
    c = CacheControl.from_headers(h)
    assert c.public and c.max_age() == 9
