"""Route matching and precedence, on the compiled table (no sockets: pure data in, route out)."""

from __future__ import annotations

from propylon.gateway.config import parse_config
from propylon.gateway.router import Router, normalize_host
from propylon.protocols.http.header import HeaderMap


def router(*routes) -> Router:
    conf = parse_config({
        "listeners": [{"name": "a", "address": "127.0.0.1:1"}, {"name": "b", "address": "127.0.0.1:2"}],
        "clusters": {"c": {"backends": [{"address": "127.0.0.1:3"}]}},
        "routes": [dict(r, respond={"status": 200}) for r in routes],
    })
    return Router(conf.routes, [l.name for l in conf.listeners])


def pick(r: Router, host="x.test", path="/", method="GET", headers=(), query=None, listener="a"):
    m = r.find(listener, normalize_host(host), method, path, HeaderMap.from_pairs(headers), query)
    return None if m is None else (m.route.name, m.captures)


def test_exact_host_beats_wildcard_beats_any():
    r = router({"name": "any"}, {"name": "wild", "match": {"hosts": ["*.example.com"]}},
               {"name": "deep", "match": {"hosts": ["*.api.example.com"]}},
               {"name": "exact", "match": {"hosts": ["www.example.com"]}})
    assert pick(r, "www.example.com")[0] == "exact"
    assert pick(r, "WWW.Example.com:8080")[0] == "exact"
    assert pick(r, "shop.example.com")[0] == "wild"
    assert pick(r, "v1.api.example.com")[0] == "deep"
    assert pick(r, "example.com")[0] == "any"          # a wildcard needs one more label
    assert pick(r, "other.test")[0] == "any"


def test_exact_path_then_longest_prefix_then_regex():
    r = router({"name": "regex", "match": {"path": {"regex": "/api/(?P<ver>v[0-9]+)/.*"}}},
               {"name": "short", "match": {"path": {"prefix": "/api/"}}},
               {"name": "long", "match": {"path": {"prefix": "/api/v1/"}}},
               {"name": "exact", "match": {"path": {"exact": "/api/v1/status"}}})
    assert pick(r, path="/api/v1/status") == ("exact", {})
    assert pick(r, path="/api/v1/users") == ("long", {})
    assert pick(r, path="/api/v2/users") == ("short", {})
    assert pick(r, path="/other") is None


def test_regex_captures_when_it_is_the_most_specific():
    r = router({"name": "regex", "match": {"path": {"regex": "/u/(?P<id>[0-9]+)"}}}, {"name": "rest"})
    assert pick(r, path="/u/42") == ("regex", {"id": "42"})
    assert pick(r, path="/u/42/x") == ("rest", {})      # the regex must match the whole path


def test_priority_wins_over_specificity():
    r = router({"name": "exact", "match": {"hosts": ["a.test"], "path": {"exact": "/x"}}},
               {"name": "catch-all", "priority": 10})
    assert pick(r, "a.test", "/x")[0] == "catch-all"


def test_method_header_and_query_conditions():
    r = router({"name": "post", "match": {"path": {"prefix": "/"}, "methods": ["POST"]}},
               {"name": "beta", "match": {"path": {"prefix": "/"},
                                          "headers": [{"name": "X-Beta", "exact": "1"}]}},
               {"name": "debug", "match": {"path": {"prefix": "/"},
                                           "query": [{"name": "debug", "present": True}]}},
               {"name": "rest", "match": {"path": {"prefix": "/"}}})
    assert pick(r, method="POST")[0] == "post"
    assert pick(r, headers=[(b"x-beta", b"1")])[0] == "beta"
    assert pick(r, headers=[(b"x-beta", b"2")])[0] == "rest"
    assert pick(r, query="a=1&debug=")[0] == "debug"
    assert pick(r, query="a=1")[0] == "rest"


def test_routes_bound_to_a_listener():
    r = router({"name": "only-b", "listeners": ["b"]}, {"name": "lower", "priority": -1})
    assert pick(r, listener="a")[0] == "lower"
    assert pick(r, listener="b")[0] == "only-b"


def test_file_order_breaks_ties_and_table_lists_every_host():
    r = router({"name": "first", "match": {"path": {"prefix": "/p"}}},
               {"name": "second", "match": {"path": {"prefix": "/q"}}},
               {"name": "h", "match": {"hosts": ["h.test"]}})
    assert [n for n, _ in [(h, 0) for h, _ in r.table("a")]] == ["h.test", "*"]
    assert [x.name for x in dict(r.table("a"))["h.test"]] == ["h", "first", "second"]
