"""Byte-level behaviour of the header types and the error type."""

from __future__ import annotations

import pytest

from propylon import Error, ErrorSource, ErrorType, RequestHeader, ResponseHeader
from propylon.proxy.proxy_trait import default_error_status


def test_lookup_is_case_insensitive_and_wire_keeps_case_and_order():
    req = RequestHeader.build("get", "/a?b=1")
    req.append_header("X-Forwarded-For", "1.1.1.1")
    req.append_header("host", "example.test")
    req.append_header("x-forwarded-for", "2.2.2.2")
    assert req.get_header("X-FORWARDED-FOR") == "1.1.1.1"
    assert req.headers.get_all("x-forwarded-for") == ["1.1.1.1", "2.2.2.2"]
    assert req.to_h1_bytes() == (b"GET /a?b=1 HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nhost: example.test\r\n"
                                 b"x-forwarded-for: 2.2.2.2\r\n\r\n")
    assert (req.method, req.path, req.query, req.uri) == ("GET", "/a", "b=1", "/a?b=1")


def test_insert_replaces_all_values_in_place_and_remove_returns_first():
    resp = ResponseHeader.build(200)
    resp.append_header("Set-Cookie", "a=1")
    resp.append_header("Server", "origin")
    resp.append_header("set-cookie", "b=2")
    resp.insert_header("SET-COOKIE", "c=3")
    assert resp.headers.items() == [("SET-COOKIE", "c=3"), ("Server", "origin")]
    assert resp.remove_header("server") == "origin"
    assert resp.remove_header("server") is None
    assert resp.to_h1_bytes() == b"HTTP/1.1 200 OK\r\nSET-COOKIE: c=3\r\n\r\n"


def test_set_uri_method_and_status():
    req = RequestHeader.build("GET", "/")
    req.set_uri("/new?x=1")
    req.set_method("post")
    assert (req.method, req.path, req.query) == ("POST", "/new", "x=1")
    resp = ResponseHeader.build(200)
    resp.set_status(418)
    assert resp.status_line() == b"HTTP/1.1 418 I'm a Teapot\r\n"


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\x00b"])
def test_header_injection_is_refused(value):
    req = RequestHeader.build("GET", "/")
    with pytest.raises(ValueError, match="X-Test"):
        req.insert_header("X-Test", value)
    with pytest.raises(ValueError):
        req.insert_header("Bad Name", "v")
    with pytest.raises(ValueError):
        req.set_uri("/a b")


def test_error_carries_type_source_context_cause_and_retry():
    cause = ConnectionRefusedError(111, "refused")
    e = Error.because(ErrorType.CONNECT_REFUSED, "dialing blue", cause).into_up()
    assert e.etype == ErrorType.CONNECT_REFUSED and e.esource is ErrorSource.UPSTREAM
    assert str(e) == "Upstream ConnectRefused context: dialing blue cause: [Errno 111] refused"
    assert e.retry() is False
    e.set_retry(True)
    wrapped = Error.because(ErrorType.INTERNAL_ERROR, "outer", e)
    assert wrapped.retry() is True and wrapped.root_cause() is cause
    assert ErrorType.custom("Mine") == ErrorType.custom("Mine") != ErrorType.custom("Other")


def test_reused_only_must_be_decided():
    e = Error.new_up(ErrorType.CONNECTION_CLOSED)
    e.set_retry_reused_only()
    with pytest.raises(ValueError):
        e.retry()
    e.decide_reused(True)
    assert e.retry() is True


@pytest.mark.parametrize("err,status", [
    (Error.http_status(429), 429),
    (Error.new_up(ErrorType.CONNECT_TIMEDOUT), 502),
    (Error.new_up(ErrorType.READ_TIMEDOUT), 502),
    (Error.new_down(ErrorType.READ_ERROR), 0),
    (Error.new_down(ErrorType.CONNECTION_CLOSED), 0),
    (Error.new_down(ErrorType.INVALID_HTTP_HEADER), 400),
    (Error.new_in(ErrorType.INTERNAL_ERROR), 500),
    (Error.new(ErrorType.custom("Unset")), 500),
])
def test_default_fail_to_proxy_status(err, status):
    assert default_error_status(err) == status
