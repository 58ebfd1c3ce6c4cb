"""RFC 9111 through the engine's cache stage: what is stored, for how long, and
what a hit answers (conditionals, ranges, HEAD), over loopback with curl."""

from __future__ import annotations

import time

import pytest

from proxy_cache_support import CachingProxy, fixed, get, origin, phases, response  # noqa: F401
from support import run_curl



def test_miss_then_hit_without_the_upstream_with_age(origin, start_proxy):
    o = origin({"/a": fixed(b"hello", "Cache-Control: max-age=60")})
    proxy = CachingProxy(o.port)
    p = start_proxy(proxy)
    first = get(p.url + "/a")
    assert (first.status, first.body) == (200, b"hello")
    time.sleep(1.1)
    second = get(p.url + "/a")
    assert (second.status, second.body) == (200, b"hello")
    assert int(second.header("age")) >= 1
    assert o.hits["/a"] == 1
    assert phases(proxy, 2) == ["MISS", "HIT"]
    stats = proxy.storage.stats  # what the metrics exporter reads
    assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)
    assert stats.bytes_stored > 5


@pytest.mark.parametrize("cc", ["no-store", "private, max-age=60", "private"])
def test_not_stored(origin, start_proxy, cc):
    o = origin({"/n": fixed(b"x", f"Cache-Control: {cc}")})
    proxy = CachingProxy(o.port)
    p = start_proxy(proxy)
    assert get(p.url + "/n").body == b"x"
    assert get(p.url + "/n").body == b"x"
    assert o.hits["/n"] == 2
    assert phases(proxy, 2) == ["DISABLED", "DISABLED"]


def test_s_maxage_wins_over_max_age(origin, start_proxy):
    o = origin({"/s": fixed(b"s", "Cache-Control: max-age=1, s-maxage=60")})
    p = start_proxy(CachingProxy(o.port))
    get(p.url + "/s")
    time.sleep(1.5)
    assert get(p.url + "/s").body == b"s"
    assert o.hits["/s"] == 1


def validating(body: bytes, cc: str, etag: str = '"v1"', lm: str = "Tue, 01 Dec 2026 00:00:00 GMT"):
    async def reply(head: bytes) -> bytes:
        h = head.lower()
        if f"if-none-match: {etag}".lower().encode() in h:
            return (f"HTTP/1.1 304 Not Modified\r\nCache-Control: {cc}\r\nETag: {etag}\r\n\r\n").encode()
        return response(body, f"Cache-Control: {cc}", f"ETag: {etag}", f"Last-Modified: {lm}")
    return reply


def test_bare_no_cache_is_stored_and_always_revalidated(origin, start_proxy):
    o = origin({"/nc": validating(b"body", "no-cache")})
    proxy = CachingProxy(o.port)
    p = start_proxy(proxy)
    assert get(p.url + "/nc").body == b"body"
    second = get(p.url + "/nc")
    assert (second.status, second.body) == (200, b"body")
    assert o.hits["/nc"] == 2
    assert b'if-none-match: "v1"' in o.heads[1].lower()
    assert phases(proxy, 2) == ["MISS", "REVALIDATED"]


def test_304_revalidation_updates_freshness(origin, start_proxy):
    o = origin({"/r": validating(b"rv", "max-age=1")})
    proxy = CachingProxy(o.port)
    p = start_proxy(proxy)
    get(p.url + "/r")
    time.sleep(1.5)
    assert get(p.url + "/r").body == b"rv"  # stale: revalidated with a 304
    third = get(p.url + "/r")                # fresh again: no upstream
    assert third.body == b"rv"
    assert o.hits["/r"] == 2
    assert phases(proxy, 3) == ["MISS", "REVALIDATED", "HIT"]
    assert proxy.storage.stats.revalidated == 1


def test_authorization_without_public_is_not_cached(origin, start_proxy):
    o = origin({"/au": fixed(b"secret", "Cache-Control: max-age=60"),
                "/pub": fixed(b"shared", "Cache-Control: public, max-age=60")})
    p = start_proxy(CachingProxy(o.port))
    for _ in range(2):
        get(p.url + "/au", "-H", "Authorization: Bearer x")
        get(p.url + "/pub", "-H", "Authorization: Bearer x")
    assert o.hits["/au"] == 2
    assert o.hits["/pub"] == 1


def test_vary_keeps_variants_apart_and_purge_removes_them_all(origin, start_proxy):
    async def reply(head: bytes) -> bytes:
        lang = b"en"
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"accept-language:"):
                lang = line.split(b":", 1)[1].strip()
        return response(b"variant " + lang, "Cache-Control: max-age=60", "Vary: Accept-Language")

    o = origin({"/v": reply})
    p = start_proxy(CachingProxy(o.port))
    assert get(p.url + "/v", "-H", "Accept-Language: de").body == b"variant de"
    assert get(p.url + "/v", "-H", "Accept-Language: fr").body == b"variant fr"
    assert get(p.url + "/v", "-H", "Accept-Language: de").body == b"variant de"
    assert get(p.url + "/v", "-H", "Accept-Language: fr").body == b"variant fr"
    assert o.hits["/v"] == 2
    assert get(p.url + "/v", "-X", "PURGE").status == 200
    assert get(p.url + "/v", "-H", "Accept-Language: de").body == b"variant de"
    assert get(p.url + "/v", "-H", "Accept-Language: fr").body == b"variant fr"
    assert o.hits["/v"] == 4


def test_conditionals_answered_304_from_cache(origin, start_proxy):
    o = origin({"/c": validating(b"cond", "max-age=60")})
    p = start_proxy(CachingProxy(o.port))
    get(p.url + "/c")
    inm = get(p.url + "/c", "-H", 'If-None-Match: "v1"')
    assert (inm.status, inm.body) == (304, b"")
    ims = get(p.url + "/c", "-H", "If-Modified-Since: Wed, 02 Dec 2026 00:00:00 GMT")
    assert ims.status == 304
    older = get(p.url + "/c", "-H", "If-Modified-Since: Mon, 30 Nov 2026 00:00:00 GMT")
    assert (older.status, older.body) == (200, b"cond")
    assert o.hits["/c"] == 1
    # The miss itself went upstream without the client's conditionals.
    assert b"if-none-match" not in o.heads[0].lower()


def test_ranges_from_cache(origin, start_proxy):
    body = bytes(range(97, 123))  # a..z
    o = origin({"/rg": fixed(body, "Cache-Control: max-age=60", "Content-Type: text/plain")})
    p = start_proxy(CachingProxy(o.port))
    miss = get(p.url + "/rg", "-r", "0-3")
    # The miss fetched the whole object and answered the range from it.
    assert (miss.status, miss.body, miss.header("content-range")) == (206, b"abcd", "bytes 0-3/26")
    assert b"range" not in o.heads[0].lower()
    single = get(p.url + "/rg", "-H", "Range: bytes=2-4")
    assert (single.status, single.body) == (206, b"cde")
    assert single.header("content-range") == "bytes 2-4/26"
    bad = get(p.url + "/rg", "-H", "Range: bytes=100-")
    assert bad.status == 416 and bad.header("content-range") == "bytes */26"
    multi = get(p.url + "/rg", "-H", "Range: bytes=0-1,24-25")
    assert multi.status == 206
    ctype = multi.header("content-type")
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("boundary=")[1].encode()
    assert multi.body.count(b"--" + boundary) == 3
    assert b"Content-Range: bytes 0-1/26\r\n\r\nab" in multi.body
    assert b"Content-Range: bytes 24-25/26\r\n\r\nyz" in multi.body
    assert int(multi.header("content-length")) == len(multi.body)
    whole = get(p.url + "/rg")
    assert whole.body == body and whole.header("accept-ranges") == "bytes"
    assert o.hits["/rg"] == 1


def test_ranges_on_a_miss_are_answered_from_the_fill(origin, start_proxy):
    # As in Pingora: the upstream is asked for the whole object, which is stored,
    # and the client gets its range (one, several, or a 416) sliced from the fill.
    body = bytes(range(97, 123))  # a..z
    o = origin({"/one": fixed(body, "Cache-Control: max-age=60", "Content-Type: text/plain"),
                "/multi": fixed(body, "Cache-Control: max-age=60", "Content-Type: text/plain"),
                "/none": fixed(body, "Cache-Control: max-age=60", "Content-Type: text/plain")})
    p = start_proxy(CachingProxy(o.port))
    one = get(p.url + "/one", "-r", "-5")
    assert (one.status, one.body, one.header("content-range")) == (206, b"vwxyz", "bytes 21-25/26")
    multi = get(p.url + "/multi", "-r", "0-1,24-25")
    assert multi.status == 206
    boundary = multi.header("content-type").split("boundary=")[1].encode()
    assert multi.body.count(b"--" + boundary) == 3 and multi.body.endswith(b"--" + boundary + b"--\r\n")
    assert b"Content-Range: bytes 0-1/26\r\n\r\nab" in multi.body
    assert b"Content-Range: bytes 24-25/26\r\n\r\nyz" in multi.body
    assert int(multi.header("content-length")) == len(multi.body)
    bad = get(p.url + "/none", "-r", "100-")
    assert (bad.status, bad.body, bad.header("content-range")) == (416, b"", "bytes */26")
    for path in ("/one", "/multi", "/none"):
        whole = get(p.url + path)  # each fill stored the whole object
        assert (whole.status, whole.body) == (200, body)
        assert o.hits[path] == 1
        assert b"range" not in o.heads[-1].lower()


def test_head_answered_from_a_get_entry_and_sent_upstream_as_get(origin, start_proxy):
    o = origin({"/h": fixed(b"headbody", "Cache-Control: max-age=60")})
    p = start_proxy(CachingProxy(o.port))
    first = get(p.url + "/h", "-I")
    assert first.status == 200 and first.body == b""
    assert o.heads[0].startswith(b"GET /h ")
    assert get(p.url + "/h").body == b"headbody"
    head = get(p.url + "/h", "-I")
    assert head.header("content-length") == "8" and head.body == b""
    assert o.hits["/h"] == 1


def test_must_revalidate_turns_off_stale_while_revalidate(origin, start_proxy):
    o = origin({"/m": fixed(b"m", "Cache-Control: max-age=1, stale-while-revalidate=60, must-revalidate")})
    proxy = CachingProxy(o.port, swr=True)
    p = start_proxy(proxy)
    get(p.url + "/m")
    time.sleep(1.5)
    get(p.url + "/m")
    assert o.hits["/m"] == 2
    assert phases(proxy, 2) == ["MISS", "EXPIRED"]


def test_stale_if_error_serves_the_stale_copy_when_the_origin_fails(origin, start_proxy):
    calls = []

    async def sie(head: bytes) -> bytes:
        calls.append(1)
        if len(calls) == 1:
            return response(b"good", "Cache-Control: max-age=1, stale-if-error=60")
        return response(b"oops", status="500 Internal Server Error")

    o = origin({"/sie": sie})
    proxy = CachingProxy(o.port)
    p = start_proxy(proxy)
    get(p.url + "/sie")
    time.sleep(1.5)
    got = get(p.url + "/sie")
    assert (got.status, got.body) == (200, b"good")
    o.stop()  # the origin is down: connection refused is an upstream error too
    got = get(p.url + "/sie")
    assert (got.status, got.body) == (200, b"good")


def test_stale_if_error_off_after_must_revalidate(origin, start_proxy):
    calls = []

    async def sie(head: bytes) -> bytes:
        calls.append(1)
        if len(calls) == 1:
            return response(b"good", "Cache-Control: max-age=1, stale-if-error=60, must-revalidate")
        return response(b"oops", status="500 Internal Server Error")

    o = origin({"/sie": sie})
    p = start_proxy(CachingProxy(o.port))
    get(p.url + "/sie")
    time.sleep(1.5)
    assert get(p.url + "/sie").status == 500


def test_purge_of_an_absent_key_is_404_and_405_without_cache(origin, start_proxy):
    o = origin({"/p": fixed(b"p", "Cache-Control: max-age=60")})
    p = start_proxy(CachingProxy(o.port))
    assert get(p.url + "/p", "-X", "PURGE").status == 404
    get(p.url + "/p")
    assert get(p.url + "/p", "-X", "PURGE").status == 200
    assert get(p.url + "/p", "-X", "PURGE").status == 404

    class Off(CachingProxy):
        def request_cache_filter(self, session, ctx):
            pass

    p2 = start_proxy(Off(o.port))
    assert get(p2.url + "/p", "-X", "PURGE").status == 405


def test_max_file_size(origin, start_proxy):
    o = origin({"/big": fixed(b"x" * 5000, "Cache-Control: max-age=60")})
    proxy = CachingProxy(o.port, max_file_size=1000)
    p = start_proxy(proxy)
    assert len(get(p.url + "/big").body) == 5000
    assert len(get(p.url + "/big").body) == 5000
    assert o.hits["/big"] == 2


def test_a_proxy_that_does_not_cache_never_enters_the_cache_stage(origin, start_proxy):
    from propylon import HttpPeer, ProxyHttp

    o = origin({"/x": fixed(b"x", "Cache-Control: max-age=60")})
    sessions = []

    class Plain(ProxyHttp):
        async def upstream_peer(self, session, ctx):
            sessions.append(session)
            return HttpPeer(("127.0.0.1", o.port), False, "")

    p = start_proxy(Plain())
    assert get(p.url + "/x").body == b"x"
    assert get(p.url + "/x").body == b"x"
    assert p.app.engine.caching is False
    assert all(s.http_cache is None for s in sessions)  # no HttpCache was ever made
    assert o.hits["/x"] == 2


def test_compression_applies_to_hits_as_to_misses(origin, start_proxy):
    import gzip

    from propylon.protocols.http.compression import CompressionOptions

    text = b"cacheable text " * 200
    o = origin({"/t": fixed(text, "Cache-Control: max-age=60", "Content-Type: text/plain")})
    proxy = CachingProxy(o.port)
    p = start_proxy(proxy, compression=CompressionOptions(gzip_level=1))
    gz = ("-H", "Accept-Encoding: gzip")
    miss = get(p.url + "/t", *gz)
    hit = get(p.url + "/t", *gz)
    plain = get(p.url + "/t")
    assert phases(proxy, 3) == ["MISS", "HIT", "HIT"]
    for got in (miss, hit):
        assert got.header("content-encoding") == "gzip"
        assert gzip.decompress(got.body) == text
    assert plain.header("content-encoding") is None and plain.body == text
    assert o.hits["/t"] == 1  # the entry holds the origin's identity body


class GeneralStepsProxy(CachingProxy):
    """A response_filter, even one that changes nothing, sends every hit through the
    general steps (hit_head, conditionals, ranges, write_header): the reference a
    hit sent with the entry's stored head is compared with."""

    async def response_filter(self, session, resp, ctx):
        pass


def test_a_hit_under_the_stored_head_grows_its_age_and_ends_the_connection_when_asked(origin, start_proxy):
    o = origin({"/s": fixed(b"stored", "Cache-Control: max-age=60", 'ETag: "s1"')})
    p = start_proxy(CachingProxy(o.port))
    assert get(p.url + "/s").body == b"stored"  # the fill
    first = get(p.url + "/s")
    time.sleep(1.1)
    second = get(p.url + "/s")  # the stored head made again for the new Age
    assert first.body == second.body == b"stored"
    assert int(second.header("age")) >= int(first.header("age")) + 1
    assert (first.header("content-length"), first.header("accept-ranges")) == ("6", "bytes")
    assert first.header("connection") is None
    closing = get(p.url + "/s", "-H", "Connection: close")
    assert (closing.header("connection"), closing.body) == ("close", b"stored")
    old = get(p.url + "/s", "--http1.0")
    assert (old.header("connection"), old.body) == ("close", b"stored")
    kept = get(p.url + "/s", "--http1.0", "-H", "Connection: keep-alive")
    assert (kept.header("connection"), kept.body) == ("keep-alive", b"stored")
    # Two hits on one connection: the first one's framing lets the second through.
    both = run_curl("-s", p.url + "/s", p.url + "/s", "-w", "[%{num_connects}]")
    assert both.stdout == b"stored[1]stored[0]"
    assert o.hits["/s"] == 1


@pytest.mark.parametrize("args", [(), ("-H", "Connection: close"), ("--http1.0",),
                                  ("--http1.0", "-H", "Connection: keep-alive"), ("-I",),
                                  ("-H", 'If-None-Match: "s1"'), ("-r", "1-2")])
def test_a_hit_under_the_stored_head_is_the_general_steps_answer(origin, start_proxy, args):
    o = origin({"/g": fixed(b"general", "Cache-Control: max-age=60", 'ETag: "s1"', "Content-Type: text/plain")})
    fast, general = start_proxy(CachingProxy(o.port)), start_proxy(GeneralStepsProxy(o.port))
    for p in (fast, general):
        get(p.url + "/g")  # the fill
    a, b = get(fast.url + "/g", *args), get(general.url + "/g", *args)
    assert (a.status, a.body) == (b.status, b.body)
    assert [(k, v if k != "age" else "") for k, v in a.headers] == \
        [(k, v if k != "age" else "") for k, v in b.headers]
