"""Lessons 9 and 10: routing by path, rewriting the query string."""

import json

from example_support import curl
from support import running


def test_09_routes_by_path_and_404s_the_rest(city):
    with running("examples/09_path_routing.py", 6149) as ex:
        blue = curl("http://127.0.0.1:6149/blue")
        assert (blue.status, blue.text) == (200, "Response from BLUE")
        green = curl("http://127.0.0.1:6149/green")
        assert (green.status, green.text) == (200, "Response from GREEN")
        missing = curl("http://127.0.0.1:6149/invalid")
        assert missing.status == 404
        assert missing.body == b""
        ex.wait_log("Routing request to BLUE based on path")
        ex.wait_log("Routing request to GREEN based on path")
        # The 404 was answered in request_filter: no peer was chosen for it.
        assert ex.log().count("Routing request to") == 2


def test_10_debug_param_stripped_and_ref_added(city):
    with running("examples/10_query_params.py", 6150) as ex:
        r = curl("http://127.0.0.1:6150/echo?q=rust&debug=true&sort=asc")
        assert r.status == 200
        doc = json.loads(r.body)
        assert doc["target"] == "/echo?q=rust&sort=asc&ref=pingora"
        assert ("Host", "blue.propylon.test") in [tuple(h) for h in doc["headers"]]
        ex.wait_log(r"Original Query: 'q=rust&debug=true&sort=asc'")
        ex.wait_log(r"Rewritten URI: /echo\?q=rust&sort=asc&ref=pingora")

        bare = json.loads(curl("http://127.0.0.1:6150/echo").body)
        assert bare["target"] == "/echo?ref=pingora"

        # The seed's own request: answered by blue, rewritten the same way.
        r = curl("http://127.0.0.1:6150/search?q=rust&debug=true&sort=asc")
        assert (r.status, r.text) == (200, "Response from BLUE")
        ex.wait_log(r"Rewritten URI: /search\?q=rust&sort=asc&ref=pingora")
