"""Lesson 6: every request on 6146 reaches blue, with Host rewritten."""

import json

from example_support import curl
from support import running


def test_forwards_to_blue_and_rewrites_host(city):
    with running("examples/06_simple_forwarder.py", 6146) as ex:
        r = curl("http://127.0.0.1:6146/")
        assert r.status == 200
        assert r.text == "Response from BLUE"
        assert r.header("x-lab-member") == "blue"
        echo = json.loads(curl("http://127.0.0.1:6146/echo").body)
        hosts = [v for k, v in echo["headers"] if k.lower() == "host"]
        assert hosts == ["blue.propylon.test"]
        ex.wait_log(r"Forwarding request to Upstream Blue \(127\.0\.0\.1:18080\)")
