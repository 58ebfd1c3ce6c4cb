"""Lesson 40: request bodies over 100 bytes get 413 on 6184, declared or streamed."""

import json
import socket
import time

from limex_support import curl, hits, retry_if_blue_vanishes, unique_path
from support import running

URL = "http://127.0.0.1:6184"
PAYLOAD = "a" * 150


@retry_if_blue_vanishes
def test_small_body_is_proxied_whole(lab):
    with running("examples/40_request_size_limit.py", 6184):
        target = "/echo?run=" + unique_path("limex40").split("=")[1]
        r = curl(URL + target, "-d", "tiny")
        assert r.status == 200
        echo = json.loads(r.body)
        assert echo["method"] == "POST" and echo["body_length"] == 4
        assert hits(target) == 1


@retry_if_blue_vanishes
def test_declared_length_over_the_limit_is_refused_before_the_body(lab):
    with running("examples/40_request_size_limit.py", 6184) as ex:
        target = unique_path("limex40-cl")
        r = curl(URL + target, "-d", PAYLOAD)
        assert r.status == 413
        ex.wait_log(r"Rejecting request by Header: Content-Length: 150 > 100")
        assert hits(target) == 0

        # "At once": the answer comes before a single body byte is sent.
        with socket.create_connection(("127.0.0.1", 6184), timeout=5) as s:
            s.sendall(f"POST {target} HTTP/1.1\r\nHost: limex\r\nContent-Length: 150\r\n\r\n".encode())
            head = s.recv(1024)
        assert head.startswith(b"HTTP/1.1 413")
        assert hits(target) == 0


@retry_if_blue_vanishes
def test_chunked_body_over_the_limit_is_counted_and_refused(lab):
    with running("examples/40_request_size_limit.py", 6184) as ex:
        target = unique_path("limex40-chunked")
        r = curl(URL + target, "-H", "Transfer-Encoding: chunked", "-d", PAYLOAD)
        assert r.status == 413
        ex.wait_log(r"Rejecting request by Stream: Accumulated 150 bytes > 100")

        # Several small chunks: the limit trips on the chunk that crosses 100 bytes.
        with socket.create_connection(("127.0.0.1", 6184), timeout=5) as s:
            s.sendall(f"POST {target} HTTP/1.1\r\nHost: limex\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            for _ in range(3):
                s.sendall(b"28\r\n" + b"b" * 40 + b"\r\n")  # 40, 80, 120 bytes
                time.sleep(0.05)
            reply = s.recv(1024)
        assert reply.startswith(b"HTTP/1.1 413")
        ex.wait_log(r"Rejecting request by Stream: Accumulated 120 bytes > 100")

        # Blue saw at most a head that never completed: no request reached it.
        time.sleep(0.2)
        assert hits(target) == 0
        assert "Fail to proxy" not in ex.log()  # an expected refusal, logged once as a warning
