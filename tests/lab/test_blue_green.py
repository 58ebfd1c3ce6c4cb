"""Blue, green and the Unix-socket member, over real sockets with curl and raw bytes."""

from __future__ import annotations

import hashlib
import json
import socket
import time

from propylon.lab import Lab

from lab_support import curl, curl_head_body, header, hostport


def test_blue_and_green_answer_with_their_colour_and_version(elab: Lab) -> None:
    for name, body, version in (("blue", "Response from BLUE", "1.0.0"),
                                ("green", "Response from GREEN", "2.0.0")):
        head, got = curl_head_body(elab.url(name) + "/any/path?x=1")
        assert head.startswith("HTTP/1.1 200")
        assert got == body
        assert header(head, "X-App-Version") == version
        assert header(head, "X-App-Name") == "http-echo"
        assert header(head, "Date")


def test_echo_shows_request_as_received(elab: Lab) -> None:
    out = curl("-X", "POST", "-H", "X-MiXeD-Case: One", "-H", "x-second: Two",
               "-d", "Hello World", elab.url("blue") + "/echo?q=rust&debug=true")
    doc = json.loads(out.stdout)
    assert doc["method"] == "POST" and doc["path"] == "/echo"
    assert doc["query"] == "q=rust&debug=true"
    names = [k for k, _ in doc["headers"]]
    assert names.index("X-MiXeD-Case") < names.index("x-second")  # wire order, original case
    assert ["X-MiXeD-Case", "One"] in doc["headers"]
    assert doc["body"] == "Hello World" and doc["body_length"] == 11
    assert doc["body_sha256"] == hashlib.sha256(b"Hello World").hexdigest()
    assert doc["chunked"] is False and doc["protocol"] == "HTTP/1.1"


def test_echo_decodes_chunked_request_body(elab: Lab) -> None:
    payload = "a" * 150
    out = curl("-H", "Transfer-Encoding: chunked", "-d", payload, elab.url("green") + "/echo")
    doc = json.loads(out.stdout)
    assert doc["chunked"] is True
    assert doc["body_length"] == 150 and doc["body"] == payload


def test_keep_alive_serves_several_requests_on_one_connection(elab: Lab) -> None:
    url = elab.url("blue") + "/echo"
    out = curl(url, url)
    docs = [json.loads(part) for part in out.stdout.replace("}\n{", "}\n\x00{").split("\x00")]
    assert [d["connection_requests"] for d in docs] == [1, 2]
    assert docs[0]["client"] == docs[1]["client"]


def test_pipelined_requests_over_a_raw_socket(elab: Lab) -> None:
    host, port = hostport(elab, "blue")
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 201 Created\r\n")
    assert data.count(b"HTTP/1.1 ") == 2
    assert data.endswith(b"Response from BLUE")


def test_malformed_request_gets_400_and_close(elab: Lab) -> None:
    host, port = hostport(elab, "blue")
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                  b"\r\nzz\r\n")
        data = s.recv(65536)
        assert data.startswith(b"HTTP/1.1 400")
        assert s.recv(100) == b""  # closed


def test_slow_answers_after_the_delay(elab: Lab) -> None:
    t0 = time.monotonic()
    head, body = curl_head_body(elab.url("blue") + "/slow?ms=300")
    assert 0.3 <= time.monotonic() - t0 < 3
    assert body == "Response from BLUE"


def test_size_streams_with_length_or_chunked(elab: Lab) -> None:
    n = 3_000_000
    expected = hashlib.sha256((bytes(range(256)) * (n // 256 + 1))[:n]).hexdigest()
    for query, te in (("", None), ("&chunked=1", "chunked")):
        out = subprocess_bytes(["curl", "-sS", "-D", "-", elab.url("blue") + f"/size?bytes={n}{query}"])
        head, _, body = out.partition(b"\r\n\r\n")
        text = head.decode()
        if te:
            assert "Transfer-Encoding: chunked" in text
        else:
            assert f"Content-Length: {n}" in text
        assert len(body) == n and hashlib.sha256(body).hexdigest() == expected


def subprocess_bytes(cmd: list[str]) -> bytes:
    import subprocess
    return subprocess.run(cmd, capture_output=True, timeout=20, check=True).stdout


def test_status_head_close_drop_and_response_headers(elab: Lab) -> None:
    head, body = curl_head_body(elab.url("green") + "/status/503")
    assert head.startswith("HTTP/1.1 503") and body == "status 503"
    out = curl("-I", elab.url("green") + "/")
    assert out.stdout.startswith("HTTP/1.1 200") and "Content-Length: 19" in out.stdout
    head, _ = curl_head_body(elab.url("green") + "/close")
    assert header(head, "Connection") == "close"
    head, _ = curl_head_body(elab.url("green") + "/response-headers?X-Extra=yes")
    assert header(head, "X-Extra") == "yes"
    dropped = curl(elab.url("green") + "/drop")
    assert dropped.returncode == 52  # curl: empty reply from server


def test_expect_100_continue_is_answered(elab: Lab) -> None:
    out = curl("-v", "-H", "Expect: 100-continue", "-d", "x" * 2000, elab.url("blue") + "/echo")
    assert "HTTP/1.1 100 Continue" in out.stderr
    assert json.loads(out.stdout)["body_length"] == 2000


def test_uds_member_over_unix_socket(elab: Lab) -> None:
    path = elab.address("uds")
    assert isinstance(path, str)
    out = curl("--unix-socket", path, "http://uds.propylon.test/")
    assert out.stdout == "Response from UDS"
    doc = json.loads(curl("--unix-socket", path, "http://uds.propylon.test/echo").stdout)
    assert doc["member"] == "uds"


def test_hit_counter_counts_per_target(elab: Lab) -> None:
    target = f"/count-me?t={time.monotonic_ns()}"
    for _ in range(3):
        curl(elab.url("blue") + target)
    out = curl(elab.url("blue") + "/__lab/hits", "-G", "--data-urlencode", f"target={target}")
    assert json.loads(out.stdout) == {"target": target, "hits": 3}
