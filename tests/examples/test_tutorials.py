"""The beta-users and gateway tutorials, and the two samples from the sample set."""

import gzip
import json
import re
import urllib.request

from example_support import curl
from support import running


def test_beta_users_counted_and_routed_to_their_upstream(city):
    with running("examples/tutorial_beta_users.py", 6190) as ex:
        regular = curl("http://127.0.0.1:6190/")
        assert (regular.status, regular.text) == (200, "Response from BLUE")
        beta = curl("http://127.0.0.1:6190/", "-H", "beta-flag: 1")
        assert (beta.status, beta.text) == (200, "Response from GREEN")
        assert curl("http://127.0.0.1:6190/").text == "Response from BLUE"
        assert curl("http://127.0.0.1:6190/", "-H", "beta-flag: yes").text == "Response from GREEN"

        # Regular lines show the count of all requests, beta lines the beta count.
        ex.wait_log(r"I'm a beta user #2")
        lines = re.findall(r"I'm a (?:beta )?user #\d+", ex.log())
        assert lines == ["I'm a user #1", "I'm a beta user #1", "I'm a user #3", "I'm a beta user #2"]

        echo = json.loads(curl("http://127.0.0.1:6190/echo", "-H", "beta-flag: 1").body)
        assert echo["member"] == "green"
        assert ["Host", "green.propylon.test"] in echo["headers"]


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} not in metrics:\n{text}"
    return float(m.group(1))


def test_gateway_login_routing_headers_and_metrics(city):
    with running("examples/tutorial_gateway.py", 6191, 6192) as ex:
        denied = curl("http://127.0.0.1:6191/login")
        assert denied.status == 403
        wrong = curl("http://127.0.0.1:6191/login", "-H", "Authorization: letmein")
        assert wrong.status == 403

        allowed = curl("http://127.0.0.1:6191/login", "-H", "Authorization: password")
        assert (allowed.status, allowed.text) == (200, "Response from BLUE")
        assert allowed.header("server") == "MyGateway"

        family = curl("http://127.0.0.1:6191/family")
        assert (family.status, family.text) == (200, "Response from GREEN")

        # Blue adds the headers asked for; the gateway replaces Server and drops alt-svc.
        r = curl("http://127.0.0.1:6191/response-headers?alt-svc=h3%3D%22%3A443%22&Server=blue")
        assert r.status == 200
        assert r.header("alt-svc") is None
        assert [v for k, v in r.headers if k == "server"] == ["MyGateway"]
        assert r.header("x-app-name") == "http-echo"

        ex.wait_log(r"Request to /login responded with status code 403")
        ex.wait_log(r"Request to /login responded with status code 200")
        ex.wait_log(r"Request to /family responded with status code 200")

        metrics = curl("http://127.0.0.1:6192/metrics")
        assert metrics.status == 200
        assert _metric(metrics.text, "req_counter_total") == 5.0
        assert "# HELP req_counter_total Number of requests" in metrics.text

        # Scrapers that accept gzip get it compressed.
        req = urllib.request.Request("http://127.0.0.1:6192/metrics", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert _metric(gzip.decompress(resp.read()).decode(), "req_counter_total") == 5.0


def test_sample_simple_proxy_reaches_https_upstream(city):
    with running("examples/samples/simple_proxy.py", 6188) as ex:
        r = curl("http://127.0.0.1:6188", "-H", "Host: advanced.propylon.test")
        assert r.status == 200
        assert r.text == "Response from Advanced Upstream (HTTPS + HTTP/1.1)"
        assert r.header("x-lab-sni") == "advanced.propylon.test"
        assert r.header("x-lab-host") == "advanced.propylon.test"
        ex.wait_log(r"Proxying GET / to 127\.0\.0\.1:18443")


def test_sample_header_filter_changes_both_directions(city):
    with running("examples/samples/header_filter.py", 6188) as ex:
        r = curl("http://127.0.0.1:6188", "-H", "Host: advanced.propylon.test")
        assert r.status == 200
        assert r.text.startswith("Response from Advanced Upstream (HTTPS")
        assert r.header("x-proxied-by") == "Propylon"
        assert r.header("x-lab-member") is None

        echo = json.loads(curl("http://127.0.0.1:6188/echo", "-H", "Host: advanced.propylon.test",
                               "-H", "Cookie: session=secret").body)
        seen = {k.lower(): v for k, v in echo["headers"]}
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-proxy-sample"] == "header_filter"
        assert "cookie" not in seen
        ex.wait_log(r"upstream_request_filter: GET /echo")
        ex.wait_log(r"response_filter: status 200")
