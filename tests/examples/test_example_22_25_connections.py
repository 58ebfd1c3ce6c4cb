"""Lessons 22 and 25: HTTPS through a CONNECT tunnel; pooled upstream connections."""

import json
import re
import subprocess

from example_support import curl
from support import running


def test_22_https_upstream_reached_through_connect_tunnel(city):
    with running("examples/22_proxy_connect.py", 6166) as ex:
        r = curl("http://127.0.0.1:6166/")
        assert r.status == 200
        assert r.text.startswith("Response from Advanced Upstream (HTTPS + ")
        # TLS ran inside the tunnel, end to end with the upstream, for the right name.
        assert r.header("x-lab-sni") == "advanced.propylon.test"
        assert r.header("x-lab-host") == "advanced.propylon.test"
        log = ex.wait_log(r"Connector: Dialing Proxy at 127\.0\.0\.1:13128\.\.\.").start()
        ex.wait_log(r"Connector: Sending CONNECT request for advanced\.propylon\.test:18443", start=log)
        ex.wait_log(r"Connector: Tunnel established!", start=log)

        echo = json.loads(curl("http://127.0.0.1:6166/echo").body)
        assert echo["tls"] is not None
        assert echo["tls"]["sni"] == "advanced.propylon.test"


def test_25_second_request_reuses_the_upstream_connection(city):
    with running("examples/25_connection_reuse.py", 6169) as ex:
        # The seed's check: one curl, two URLs, back to back.
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "--max-time", "5",
                            "http://127.0.0.1:6169/", "http://127.0.0.1:6169/"], timeout=10)
        assert r.returncode == 0
        ex.wait_log(r"Reused Connection: false[\s\S]*Reused Connection: true")
        flags = re.findall(r"Reused Connection: (\w+)", ex.log())
        assert flags[:2] == ["false", "true"]

        # The upstream agrees: it served both /echo calls on one connection.
        first = json.loads(curl("http://127.0.0.1:6169/echo").body)
        second = json.loads(curl("http://127.0.0.1:6169/echo").body)
        assert second["connection_requests"] == first["connection_requests"] + 1
        assert second["client"] == first["client"]
        ex.wait_log(r"(Reused Connection: \w+[\s\S]*){4}")
        assert re.findall(r"Reused Connection: (\w+)", ex.log()) == ["false", "true", "true", "true"]
