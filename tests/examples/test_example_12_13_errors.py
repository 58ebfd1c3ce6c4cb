"""Lessons 12 and 13: refusing a request body, answering errors with JSON."""

import json
import socket
import time

from example_support import curl
from support import running


def test_12_clean_body_passes_rogue_body_refused(city):
    with running("examples/12_body_inspection.py", 6152) as ex:
        ok = curl("http://127.0.0.1:6152/", "-X", "POST", "-d", "Hello World")
        assert (ok.status, ok.text) == (200, "Response from BLUE")

        echo = json.loads(curl("http://127.0.0.1:6152/echo", "-X", "POST", "-d", "Hello World").body)
        assert echo["body"] == "Hello World"

        bad = curl("http://127.0.0.1:6152/", "-X", "POST", "-d", "I am a rogue agent")
        assert bad.status == 500
        assert "BLUE" not in bad.text
        ex.wait_log("Security Alert: Forbidden content 'rogue' detected in body!")
        ex.wait_log("Fail to proxy: .*SecurityPolicyViolation")


def test_12_keyword_split_across_pieces_is_caught(city):
    # Chunked upload sent in two writes: "...rog" then "ue...".
    with running("examples/12_body_inspection.py", 6152) as ex:
        with socket.create_connection(("127.0.0.1", 6152), timeout=5) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"7\r\nI'm rog\r\n")
            time.sleep(0.2)
            s.sendall(b"8\r\nue agent\r\n0\r\n\r\n")
            got = b""
            # The whole upload arrived, so the connection stays open after the
            # answer (an empty 500): read up to the end of its head.
            while b"\r\n\r\n" not in got:
                piece = s.recv(4096)
                if not piece:
                    break
                got += piece
        assert got.startswith(b"HTTP/1.1 500 "), got
        ex.wait_log("Forbidden content 'rogue' detected")


def test_12_oversized_body_refused_with_413(city, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"a" * (1024 * 1024 + 10))
    with running("examples/12_body_inspection.py", 6152):
        r = curl("http://127.0.0.1:6152/echo", "-X", "POST", "--data-binary", f"@{big}",
                 "-H", "Expect:")
        assert r.status == 413


def test_13_normal_path_proxied_oops_gets_json_400(city):
    with running("examples/13_custom_errors.py", 6153) as ex:
        ok = curl("http://127.0.0.1:6153/")
        assert (ok.status, ok.text) == (200, "Response from BLUE")

        r = curl("http://127.0.0.1:6153/oops")
        assert r.status == 400
        assert r.header("content-type") == "application/json"
        assert json.loads(r.body) == {"status": "error", "code": 400,
                                      "message": "We caught a custom error!"}
        assert r.header("content-length") == str(len(r.body))
        ex.wait_log(r"Entered fail_to_proxy with error: SimulatedFailure")


def test_13_connection_closed_after_the_error_response(city):
    # FailToProxy(can_reuse_downstream=False): the client connection ends with the answer.
    with running("examples/13_custom_errors.py", 6153):
        with socket.create_connection(("127.0.0.1", 6153), timeout=3) as s:
            s.sendall(b"GET /oops HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while True:
                piece = s.recv(4096)  # times out (fails) if the server kept the connection
                if not piece:
                    break
                got += piece
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        assert json.loads(body)["code"] == 400
