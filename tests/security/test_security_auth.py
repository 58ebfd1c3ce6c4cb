"""Auth parsers and checkers: every branch, malformed input never raises."""

import base64

import pytest

from propylon.security import (
    AuthOutcome,
    BasicAuth,
    BearerAuth,
    constant_time_equals,
    parse_basic,
    parse_bearer,
)


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "value, token",
    [
        ("Bearer super-secret-token", "super-secret-token"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("  BEARER   tok  ", "tok"),
        (b"Bearer bytes-token", "bytes-token"),
        ("Bearer\ttabbed", "tabbed"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer two words", None),
        ("Basic YWRtaW46cGFzc3dvcmQ=", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_bearer(value, token):
    assert parse_bearer(value) == token


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Basic YWRtaW46cGFzc3dvcmQ=", ("admin", "password")),
        (basic("user:pa:ss:word"), ("user", "pa:ss:word")),
        (basic(":empty-user"), ("", "empty-user")),
        (basic("süß:pässwörd"), ("süß", "pässwörd")),
        (b"basic " + base64.b64encode(b"a:b"), ("a", "b")),
        ("Basic bm9jb2xvbg==", None),  # "nocolon"
        ("Basic !!!notbase64!!!", None),
        ("Basic YWRtaW46cGFzc3dvcmQ", None),  # bad padding
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), None),  # not UTF-8
        ("Basic", None),
        ("Basic ümlaut", None),  # non-ASCII base64 text
        ("Bearer YWRtaW46cGFzc3dvcmQ=", None),
        (None, None),
    ],
)
def test_parse_basic(value, expected):
    assert parse_basic(value) == expected


def test_constant_time_equals():
    assert constant_time_equals("secret", "secret")
    assert constant_time_equals(b"secret", "secret")
    assert not constant_time_equals("secret", "secreT")
    assert not constant_time_equals("secret", "secret-longer")
    assert constant_time_equals("ü", "ü".encode())


def test_bearer_auth_branches():
    auth = BearerAuth(["super-secret-token", b"second-token"])
    missing = auth.check(None)
    assert (missing.outcome, missing.status, missing.challenge) == (AuthOutcome.MISSING, 401, "Bearer")
    assert missing.headers == [("WWW-Authenticate", "Bearer")]
    assert auth.check("").status == 401
    assert auth.check("Basic YWRtaW46cGFzc3dvcmQ=").status == 401  # another scheme
    wrong = auth.check("Bearer bad-token")
    assert (wrong.outcome, wrong.status, wrong.headers, wrong.ok) == (AuthOutcome.WRONG, 403, [], False)
    assert auth.check("Bearer").status == 403  # scheme given, token missing
    assert auth.check("Bearer super-secret-token-and-more").status == 403
    ok = auth.check("Bearer super-secret-token")
    assert ok.ok and ok.status == 200 and ok.headers == []
    assert auth.check(b"bearer second-token").ok


def test_bearer_auth_realm_and_empty_token_list():
    assert BearerAuth(["t"], realm='api "v1"').challenge == 'Bearer realm="api \\"v1\\""'
    with pytest.raises(ValueError):
        BearerAuth([])


def test_basic_auth_branches():
    auth = BasicAuth({"admin": "password", "ops": "s3cr:et"}, realm="PingoraProxy")
    missing = auth.check(None)
    assert (missing.status, missing.challenge) == (401, 'Basic realm="PingoraProxy"')
    assert missing.headers == [("WWW-Authenticate", 'Basic realm="PingoraProxy"')]
    assert auth.check("Bearer token").status == 401
    ok = auth.check("Basic YWRtaW46cGFzc3dvcmQ=")
    assert ok.ok and ok.user == "admin" and ok.status == 200
    assert auth.check(basic("ops:s3cr:et")).user == "ops"
    assert auth.check(basic("admin:wrong")).status == 403
    assert auth.check(basic("admin:")).status == 403
    unknown = auth.check(basic("mallory:password"))
    assert (unknown.outcome, unknown.status, unknown.user) == (AuthOutcome.WRONG, 403, None)
    assert auth.check("Basic %%%garbage").status == 403
    assert auth.check("Basic " + base64.b64encode(b"no-colon").decode()).status == 403
    assert BasicAuth({}).check(basic("a:b")).status == 403
    assert BasicAuth({"u": "p"}).challenge == 'Basic realm="Restricted"'
