"""Lesson 39: 127.0.0.2 is refused on 6183 – with a 403 page (request filter), or
before any HTTP (connection filter, ``CONNECTION_FILTER=1``)."""

import socket

import pytest

from limex_support import BLUE_BODY, curl, hits, retry_if_blue_vanishes, unique_path
from support import running

URL = "http://127.0.0.1:6183"


@retry_if_blue_vanishes
def test_request_filter_answers_403_to_the_blocked_address_only(lab):
    with running("examples/39_connection_filter.py", 6183) as ex:
        target = unique_path("limex39")
        allowed = curl(URL + target)
        assert allowed.status == 200 and allowed.body == BLUE_BODY

        blocked = curl(URL + target, "--interface", "127.0.0.2")
        assert blocked.status == 403
        assert "Forbidden" in blocked.body
        assert blocked.header("content-type") == "text/plain"

        assert hits(target) == 1  # only the allowed request reached blue
        ex.wait_log(r"Access Denied for IP: 127\.0\.0\.2 \(GET /limex39")
        assert "Access Denied for IP: 127.0.0.1" not in ex.log()


@retry_if_blue_vanishes
def test_connection_filter_resets_the_blocked_address_before_any_http(lab):
    with running("examples/39_connection_filter.py", 6183, env={"CONNECTION_FILTER": "1"}) as ex:
        target = unique_path("limex39-l4")
        assert curl(URL + target).status == 200

        # The handshake completes in the kernel; the proxy then drops the
        # connection without reading: the client, which has sent nothing, gets no
        # byte of HTTP, only the close. The reset may even beat connect() back.
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
            s.settimeout(3)
            try:
                s.connect(("127.0.0.1", 6183))
                data = s.recv(1024)
            except ConnectionResetError:
                data = b""
        assert data == b""
        # An allowed client's silent connection stays open, waiting for a request.
        with socket.create_connection(("127.0.0.1", 6183), timeout=0.5) as s:
            with pytest.raises(socket.timeout):
                s.recv(1024)

        refused = curl(URL + target, "--interface", "127.0.0.2")
        assert refused.status == 0 and refused.exit_code in (7, 52, 56), refused

        assert hits(target) == 1
        ex.wait_count(r"Connection refused for IP: 127\.0\.0\.2", 2)
        assert "Access Denied" not in ex.log()  # never reached the HTTP layer
