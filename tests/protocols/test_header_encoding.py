"""HTTP/1 heads as bytes: the fields in order and case, the request and status lines."""

from propylon.protocols.http.header import HeaderMap, RequestHeader, ResponseHeader


def test_a_request_head_keeps_the_fields_order_and_case():
    req = RequestHeader.build("POST", "/a/b?x=1")
    req.append_header("Host", "example.test")
    req.append_header("X-Custom-Thing", "one")
    req.append_header("x-custom-thing", b"two")
    req.append_header("Content-Length", "3")
    assert req.to_h1_bytes() == (b"POST /a/b?x=1 HTTP/1.1\r\nHost: example.test\r\nX-Custom-Thing: one\r\n"
                                 b"x-custom-thing: two\r\nContent-Length: 3\r\n\r\n")


def test_an_http_1_0_request_and_one_with_no_fields():
    assert RequestHeader.build("GET", "/", version=(1, 0)).to_h1_bytes() == b"GET / HTTP/1.0\r\n\r\n"
    assert RequestHeader.build("DELETE", "/x").to_h1_bytes() == b"DELETE /x HTTP/1.1\r\n\r\n"


def test_a_response_head_with_many_fields_and_a_reason_of_its_own():
    resp = ResponseHeader.build(200)
    for i in range(40):
        resp.append_header(f"X-Field-{i}", "v" * i)
    expected = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * i) for i in range(40)) + b"\r\n"
    assert resp.to_h1_bytes() == expected
    resp.set_reason_phrase("Fine")
    assert resp.to_h1_bytes() == b"HTTP/1.1 200 Fine\r\n" + expected[len(b"HTTP/1.1 200 OK\r\n"):]
    assert ResponseHeader(599).to_h1_bytes() == b"HTTP/1.1 599 \r\n\r\n"  # no known reason


def test_a_field_stored_as_another_bytes_like_is_written_the_same():
    # Code may put fields straight into the list; a bytearray value is written as bytes.
    fields = [(b"a", b"A", bytearray(b"1")), (b"b", b"B", b"2")]
    resp = ResponseHeader(204, headers=HeaderMap(fields))
    assert resp.to_h1_bytes() == b"HTTP/1.1 204 No Content\r\nA: 1\r\nB: 2\r\n\r\n"
    req = RequestHeader(b"GET", b"/", (1, 1), HeaderMap(list(fields)))
    assert req.to_h1_bytes() == b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n"
