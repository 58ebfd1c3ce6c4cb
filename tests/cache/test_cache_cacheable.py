"""resp_cacheable: which responses are stored, and for how long (Pingora's rules + RFC 9111)."""

import email.utils

import pytest

from propylon import ResponseHeader
from propylon.cache import CacheControl, CacheMeta, CacheMetaDefaults, NoCacheReason, resp_cacheable

NOW = 1_700_000_000.0
DEFAULTS = CacheMetaDefaults(lambda status: 10 if status in (200, 301) else None, 5, 7)


def resp(status: int = 200, *fields: tuple[str, str]) -> ResponseHeader:
    r = ResponseHeader(status)
    for name, value in fields:
        r.append_header(name, value)
    return r


def decide(r: ResponseHeader, auth: bool = False, defaults: CacheMetaDefaults = DEFAULTS):
    return resp_cacheable(CacheControl.from_headers(r.headers), r, auth, defaults, now=NOW)


def http_date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


def test_max_age_sets_fresh_until_and_keeps_defaults_for_stale_windows():
    meta = decide(resp(200, ("Cache-Control", "max-age=60")))
    assert isinstance(meta, CacheMeta)
    assert meta.fresh_until == NOW + 60 and meta.created == meta.updated == NOW
    assert (meta.stale_while_revalidate_sec, meta.stale_if_error_sec) == (5, 7)


def test_s_maxage_over_max_age_and_no_serving_stale():
    meta = decide(resp(200, ("Cache-Control", "max-age=60, s-maxage=5, stale-if-error=100")))
    assert meta.fresh_until == NOW + 5
    assert (meta.stale_while_revalidate_sec, meta.stale_if_error_sec) == (0, 0)


def test_must_revalidate_turns_off_swr_and_sie():
    meta = decide(resp(200, ("Cache-Control", "max-age=60, must-revalidate, stale-while-revalidate=30")))
    assert (meta.stale_while_revalidate_sec, meta.stale_if_error_sec) == (0, 0)


def test_cc_stale_windows_override_defaults():
    meta = decide(resp(200, ("Cache-Control", "max-age=1, stale-while-revalidate=30, stale-if-error=600")))
    assert (meta.stale_while_revalidate_sec, meta.stale_if_error_sec) == (30, 600)


@pytest.mark.parametrize("value", ["no-store", "private", "private, max-age=60", "no-store, public"])
def test_no_store_and_private_not_cached(value):
    assert decide(resp(200, ("Cache-Control", value))) is NoCacheReason.ORIGIN_NOT_CACHE


def test_private_field_list_cached_without_those_fields():
    r = resp(200, ("Cache-Control", 'private="Set-Cookie", max-age=60'), ("Set-Cookie", "s=1"), ("X-A", "a"))
    meta = decide(r)
    assert "Set-Cookie" not in meta.header.headers and meta.header.headers.get("X-A") == "a"
    assert "Set-Cookie" in r.headers  # the response sent downstream is untouched


def test_bare_no_cache_stored_already_stale():
    meta = decide(resp(200, ("Cache-Control", "no-cache, max-age=600")))
    assert isinstance(meta, CacheMeta)
    assert meta.fresh_until == NOW - 1 and not meta.is_fresh(NOW)


def test_max_age_zero_stored_stale():
    assert decide(resp(200, ("Cache-Control", "max-age=0"))).fresh_until == NOW - 1


def test_authorization_needs_public_s_maxage_or_must_revalidate():
    assert decide(resp(200, ("Cache-Control", "max-age=60")), auth=True) is NoCacheReason.ORIGIN_NOT_CACHE
    assert decide(resp(200), auth=True) is NoCacheReason.ORIGIN_NOT_CACHE
    for value in ("public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60"):
        assert isinstance(decide(resp(200, ("Cache-Control", value)), auth=True), CacheMeta), value


def test_expires_relative_to_date():
    # The origin's clock is an hour behind: Expires - Date still gives 100 s.
    origin_now = NOW - 3600
    r = resp(200, ("Date", http_date(origin_now)), ("Expires", http_date(origin_now + 100)))
    assert decide(r).fresh_until == NOW + 100


def test_expires_without_date_is_absolute():
    assert decide(resp(200, ("Expires", http_date(NOW + 50)))).fresh_until == NOW + 50


def test_expires_in_the_past_and_invalid_are_stale():
    assert decide(resp(200, ("Expires", http_date(NOW - 50)))).fresh_until == NOW - 1
    assert decide(resp(200, ("Expires", "0"))).fresh_until == NOW - 1


def test_several_expires_ignored_defaults_apply():
    r = resp(200, ("Expires", http_date(NOW + 50)), ("Expires", http_date(NOW + 80)))
    assert decide(r).fresh_until == NOW + 10


def test_max_age_beats_expires():
    r = resp(200, ("Cache-Control", "max-age=3"), ("Expires", http_date(NOW + 500)))
    assert decide(r).fresh_until == NOW + 3


def test_defaults_by_status():
    assert decide(resp(200)).fresh_until == NOW + 10
    assert decide(resp(301)).fresh_until == NOW + 10
    assert decide(resp(404)) is NoCacheReason.ORIGIN_NOT_CACHE
    assert decide(resp(500)) is NoCacheReason.ORIGIN_NOT_CACHE


def test_status_not_checked_when_headers_give_a_ttl():
    assert decide(resp(404, ("Cache-Control", "max-age=30"))).fresh_until == NOW + 30
    assert decide(resp(500, ("Expires", http_date(NOW + 30)))).fresh_until == NOW + 30


def test_public_without_ttl_uses_defaults():
    assert decide(resp(200, ("Cache-Control", "public"))).fresh_until == NOW + 10
    assert decide(resp(404, ("Cache-Control", "public"))) is NoCacheReason.ORIGIN_NOT_CACHE


def test_304_uses_the_200_default():
    assert CacheMetaDefaults(lambda s: 10 if s == 200 else None).fresh_sec(304) == 10


def test_vary_star_not_cacheable_vary_list_is():
    assert decide(resp(200, ("Cache-Control", "max-age=60"), ("Vary", "*"))) is NoCacheReason.ORIGIN_NOT_CACHE
    assert decide(resp(200, ("Cache-Control", "max-age=60"), ("Vary", "Accept, *"))) is NoCacheReason.ORIGIN_NOT_CACHE
    assert isinstance(decide(resp(200, ("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding"))), CacheMeta)


def test_origin_age_is_not_subtracted():
    assert decide(resp(200, ("Cache-Control", "max-age=60"), ("Age", "50"))).fresh_until == NOW + 60


def test_stale_windows_from_meta():
    meta = decide(resp(200, ("Cache-Control", "max-age=10, stale-while-revalidate=5, stale-if-error=20")))
    assert meta.is_fresh(NOW + 10) and not meta.is_fresh(NOW + 11)
    assert meta.serve_stale_while_revalidate(NOW + 15) and not meta.serve_stale_while_revalidate(NOW + 16)
    assert meta.serve_stale_if_error(NOW + 30) and not meta.serve_stale_if_error(NOW + 31)
    assert meta.age(NOW + 7.9) == 7


def test_invalid_defaults_named():
    with pytest.raises(ValueError, match="stale_if_error_sec"):
        CacheMetaDefaults(lambda s: None, 0, -1)
