"""Lessons 8 and 11: headers changed on the way up and on the way back."""

import json

from example_support import curl
from support import running


def _echo_headers(url: str, *args: str) -> list[tuple[str, str]]:
    r = curl(url, *args)
    assert r.status == 200
    return [(k.lower(), v) for k, v in json.loads(r.body)["headers"]]


def test_08_request_tagged_and_scrubbed_response_stamped(city):
    with running("examples/08_header_manipulation.py", 6148) as ex:
        r = curl("http://127.0.0.1:6148/", "-A", "curl-test/1.0")
        assert r.status == 200
        assert r.text == "Response from GREEN"
        assert r.header("x-edited-by") == "Propylon"

        seen = _echo_headers("http://127.0.0.1:6148/echo", "-A", "curl-test/1.0")
        names = [k for k, _ in seen]
        assert "user-agent" not in names
        assert ("x-propylon-proxy", "true") in seen
        assert ("host", "green.propylon.test") in seen
        assert names.count("host") == 1

        ex.wait_log("Request headers modified: Added X-Propylon-Proxy, Removed User-Agent.")
        ex.wait_log("Response headers modified: Added X-Edited-By")


def test_11_version_hidden_security_header_added_date_copied(city):
    with running("examples/11_response_modification.py", 6151) as ex:
        r = curl("http://127.0.0.1:6151/")
        assert r.status == 200
        assert r.text == "Response from BLUE"
        assert r.header("x-app-name") == "http-echo"
        assert r.header("x-app-version") is None
        assert r.header("x-content-type-options") == "nosniff"
        assert r.header("date")
        assert r.header("x-legacy-date") == r.header("date")
        ex.wait_log("Response filtered. Stripped Version. Added Security Headers.")
