"""The upstream HTTP/2 codec against the lab's h2c and h2 members, our own server, and
small scripted h2 servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
from typing import Callable, Optional

import h2.config
import h2.connection
import h2.events
import pytest
import uvloop

from h2_support import ServerThread
from propylon.errors import Error, ErrorSource, ErrorType, RetryType
from propylon.protocols.http.header import HeaderMap, RequestHeader
from propylon.protocols.http.v2.client import H2ClientConnection, H2ClientStream
from support import pattern

pytestmark = pytest.mark.timeout(60)


def run(coro):
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def connect(host: str, port: int, **kw) -> H2ClientConnection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(H2ClientConnection, host, port, **kw)
    return conn


def request(method: str, path: str, host: str = "h2.test", **headers: str) -> RequestHeader:
    req = RequestHeader.build(method, path)
    req.append_header("Host", host)
    for k, v in headers.items():
        req.append_header(k.replace("_", "-"), v)
    return req


async def exchange(conn: H2ClientConnection, req: RequestHeader, body: Optional[bytes] = None,
                   trailers: Optional[HeaderMap] = None, read_timeout: float = 5.0):
    """One request on a new stream; returns (status, headers, body, trailers, reusable)."""
    st = conn.open_stream()
    st.read_timeout = read_timeout
    try:
        st.send_request_header(req, body is not None, body is not None and trailers is None)
        if body is not None:
            for i in range(0, len(body), 65536):
                st.write_body(body[i:i + 65536])
                if st.write_blocked:
                    await st.drain()
            st.finish_body(trailers)
        resp = await st.read_response_header()
        while resp.status < 200:
            resp = await st.read_response_header()
        parts = []
        while (d := await st.read_body()) is not None:
            parts.append(d)
        return resp.status, resp.headers, b"".join(parts), st.trailers, st.reusable()
    finally:
        st.close()


# --- against the lab -------------------------------------------------------------------------
def test_lab_h2c_multiplexes_streams_on_one_connection(lab):
    host, port = lab.address("advanced-h2c")

    async def main():
        conn = await connect(host, port)
        start = time.monotonic()
        results = await asyncio.gather(*(exchange(conn, request("GET", "/slow?ms=400")) for _ in range(6)))
        took = time.monotonic() - start
        echo = await exchange(conn, request("GET", "/echo", Connection="keep-alive", TE="trailers",
                                            X_Test="1"))
        opened = conn.streams_opened
        conn.close()
        return results, took, echo, opened

    results, took, echo, opened = run(main())
    assert [r[0] for r in results] == [200] * 6
    assert all(b"H2C" in r[2] for r in results)
    assert took < 1.5, f"six 400 ms requests took {took:.2f}s: not concurrent"
    status, _, body, _, reusable = echo
    doc = json.loads(body)
    assert status == 200 and reusable and opened == 7
    assert doc["protocol"] == "HTTP/2"
    sent = {k: v for k, v in doc["headers"]}
    assert sent[":authority"] == "h2.test" and sent[":scheme"] == "http"
    assert "host" not in sent and "connection" not in sent and sent["te"] == "trailers"
    assert sent["x-test"] == "1"


def test_lab_h2c_large_body_both_ways(lab):
    host, port = lab.address("advanced-h2c")
    up = pattern(6_000_000)

    async def main():
        conn = await connect(host, port)
        down = await exchange(conn, request("GET", "/size?bytes=8000000"))
        echo = await exchange(conn, request("POST", "/echo", Content_Length=str(len(up))), up)
        conn.close()
        return down, echo

    down, echo = run(main())
    assert down[0] == 200 and len(down[2]) == 8_000_000
    assert down[2] == pattern(8_000_000)
    doc = json.loads(echo[2])
    assert doc["body_length"] == len(up)
    assert doc["body_sha256"] == hashlib.sha256(up).hexdigest()


def test_lab_h2c_request_trailers_and_reset_stream(lab):
    host, port = lab.address("advanced-h2c")

    async def main():
        conn = await connect(host, port)
        echo = await exchange(conn, request("POST", "/echo", TE="trailers"), b"abc",
                              HeaderMap.from_pairs([("X-Sum", "42")]))
        try:
            await exchange(conn, request("GET", "/drop"))
            dropped = None
        except Error as e:
            dropped = e
        after = await exchange(conn, request("GET", "/"))
        conn.close()
        return echo, dropped, after

    echo, dropped, after = run(main())
    doc = json.loads(echo[2])
    assert doc["trailers"] == [["x-sum", "42"]] and doc["body"] == "abc"
    assert dropped is not None and dropped.etype == ErrorType.H2_ERROR
    assert dropped.esource is ErrorSource.UPSTREAM
    assert after[0] == 200  # a reset stream does not harm the connection


def test_lab_h2_over_tls_with_alpn(lab):
    host, port = lab.address("advanced-https")
    ctx = ssl.create_default_context(cafile=str(lab.certs_dir / "ca.crt"))
    ctx.set_alpn_protocols(["h2"])

    async def main():
        conn = await connect(host, port, ssl=ctx, server_hostname="advanced.propylon.test")
        alpn = conn.transport.get_extra_info("ssl_object").selected_alpn_protocol()
        res = await exchange(conn, request("GET", "/echo", host="advanced.propylon.test"))
        conn.close()
        return alpn, res

    alpn, res = run(main())
    assert alpn == "h2"
    doc = json.loads(res[2])
    sent = {k: v for k, v in doc["headers"]}
    assert doc["protocol"] == "HTTP/2" and sent[":scheme"] == "https"


# --- against our own server ------------------------------------------------------------------------
def test_own_server_trailers_slots_and_ping():
    async def main(port):
        conn = await connect("127.0.0.1", port)
        conn.max_streams = 2
        res = await exchange(conn, request("GET", "/trailers"))
        a, b = conn.open_stream(), conn.open_stream()
        full = None
        try:
            conn.open_stream()
        except Error as e:
            full = e
        a.close()
        c = conn.open_stream()  # a's slot is free again
        b.close()
        c.close()
        rtt = await conn.ping()
        usable = conn.is_usable()
        conn.close()
        return res, full, rtt, usable, conn.is_usable()

    with ServerThread() as s:
        res, full, rtt, usable, usable_after = run(main(s.port))
    status, _, body, trailers, reusable = res
    assert status == 200 and body == b"body before trailers" and reusable
    assert trailers.get("x-checksum") == "abc123" and trailers.get("x-done") == "yes"
    assert full is not None and full.etype == ErrorType.H2_ERROR
    assert 0 <= rtt < 1 and usable and not usable_after


def test_own_server_read_timeout_fails_only_that_stream():
    async def main(port):
        conn = await connect("127.0.0.1", port)
        try:
            await exchange(conn, request("GET", "/slow?ms=2000"), read_timeout=0.2)
            err = None
        except Error as e:
            err = e
        ok = await exchange(conn, request("GET", "/"))
        conn.close()
        return err, ok

    with ServerThread() as s:
        err, ok = run(main(s.port))
    assert err is not None and err.etype == ErrorType.READ_TIMEDOUT
    assert ok[0] == 200


def test_own_server_graceful_goaway_finishes_inflight_stream():
    async def main(server: ServerThread):
        conn = await connect("127.0.0.1", server.port)
        task = asyncio.ensure_future(exchange(conn, request("GET", "/slow?ms=600")))
        await asyncio.sleep(0.2)
        await asyncio.get_running_loop().run_in_executor(None, server.trigger_shutdown)
        await asyncio.sleep(0.1)
        usable = conn.is_usable()
        try:
            conn.open_stream()
            refused = None
        except Error as e:
            refused = e
        res = await task
        for _ in range(50):
            if conn.closed:
                break
            await asyncio.sleep(0.02)
        return usable, refused, res, conn.closed

    with ServerThread() as s:
        usable, refused, res, closed = run(main(s))
    assert not usable
    assert refused is not None and refused.retry_type is RetryType.YES
    assert res[0] == 200 and not res[4]  # finished, but the connection takes no more
    assert closed


# --- against scripted servers -----------------------------------------------------------------------
class _Scripted(asyncio.Protocol):
    """A bare h2 server whose behaviour is a function of the requests it received."""

    def __init__(self, script: Callable[["_Scripted", list], None]) -> None:
        self.script = script
        self.requests: list = []

    def connection_made(self, transport):
        self.transport = transport
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data):
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                self.requests.append(ev.stream_id)
                self.script(self, self.requests)
        self.flush()


async def scripted_server(script) -> tuple[asyncio.AbstractServer, int]:
    srv = await asyncio.get_running_loop().create_server(lambda: _Scripted(script), "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


def test_goaway_fails_streams_above_last_id_as_retryable():
    def script(p: _Scripted, reqs: list) -> None:
        if len(reqs) == 2:
            p.conn.send_headers(1, [(":status", "200"), ("content-length", "3")])
            p.conn.send_data(1, b"one", end_stream=True)
            p.conn.close_connection(last_stream_id=1)

    async def main():
        srv, port = await scripted_server(script)
        conn = await connect("127.0.0.1", port)
        first, second = await asyncio.gather(exchange(conn, request("GET", "/1")),
                                             exchange(conn, request("GET", "/2")),
                                             return_exceptions=True)
        usable = conn.is_usable()
        conn.close()
        srv.close()
        return first, second, usable

    first, second, usable = run(main())
    assert first[0] == 200 and first[2] == b"one"
    assert isinstance(second, Error) and second.retry_type is RetryType.YES
    assert second.esource is ErrorSource.UPSTREAM
    assert not usable


def test_upstream_closing_before_the_response_is_retryable_if_reused():
    def script(p: _Scripted, reqs: list) -> None:
        p.transport.close()

    async def main():
        srv, port = await scripted_server(script)
        conn = await connect("127.0.0.1", port)
        try:
            await exchange(conn, request("GET", "/"))
            err = None
        except Error as e:
            err = e
        srv.close()
        return err, conn.is_usable()

    err, usable = run(main())
    assert err is not None and err.etype == ErrorType.CONNECTION_CLOSED
    assert err.esource is ErrorSource.UPSTREAM and err.retry_type is RetryType.REUSED_ONLY
    assert not usable


def test_upstream_closing_mid_body_is_not_retryable():
    def script(p: _Scripted, reqs: list) -> None:
        p.conn.send_headers(reqs[-1], [(":status", "200"), ("content-length", "100000")])
        p.conn.send_data(reqs[-1], b"x" * 1000)
        p.flush()
        p.transport.close()

    async def main():
        srv, port = await scripted_server(script)
        conn = await connect("127.0.0.1", port)
        st = conn.open_stream()
        st.read_timeout = 5
        st.send_request_header(request("GET", "/"), False, True)
        resp = await st.read_response_header()
        got = b""
        try:
            while (d := await st.read_body()) is not None:
                got += d
            err = None
        except Error as e:
            err = e
        srv.close()
        return resp.status, got, err, st.reusable(), st.closed

    status, got, err, reusable, closed = run(main())
    assert status == 200 and got == b"x" * 1000
    assert err is not None and err.etype == ErrorType.CONNECTION_CLOSED
    assert err.retry_type is RetryType.NO
    assert not reusable and closed


def test_closing_an_unfinished_stream_resets_it_but_keeps_the_connection():
    async def main(port):
        conn = await connect("127.0.0.1", port)
        st: H2ClientStream = conn.open_stream()
        st.send_request_header(request("POST", "/slow?ms=300"), True, False)
        st.write_body(b"partial")
        st.close()
        ok = await exchange(conn, request("GET", "/after"))
        conn.close()
        return st.closed, ok

    with ServerThread() as s:
        closed, ok = run(main(s.port))
    assert closed and ok[0] == 200 and json.loads(ok[2])["path"] == "/after"


def test_own_server_receives_request_trailers_and_expected_headers():
    async def main(port):
        conn = await connect("127.0.0.1", port)
        res = await exchange(conn, request("PUT", "/echo", TE="trailers", Keep_Alive="5",
                                           Proxy_Connection="x", Upgrade="foo", Cookie="a=1"),
                             b"payload", HeaderMap.from_pairs([("X-Sum", "42")]))
        conn.close()
        return res

    with ServerThread() as s:
        status, _, body, _, _ = run(main(s.port))
    doc = json.loads(body)
    assert status == 200 and doc["method"] == "PUT" and doc["length"] == 7
    assert doc["trailers"] == {"x-sum": "42"}
    assert doc["host"] == "h2.test" and doc["first_header"] == "Host"
    for gone in ("keep-alive", "proxy-connection", "upgrade", "transfer-encoding", "connection"):
        assert gone not in doc["headers"]
    assert "te" in doc["headers"] and doc["cookie"] == "a=1"


def test_graceful_goaway_mid_upload_lets_the_body_finish():
    async def main(server: ServerThread):
        conn = await connect("127.0.0.1", server.port)
        st = conn.open_stream()
        st.read_timeout = 5
        st.send_request_header(request("POST", "/upload"), True, False)
        st.write_body(pattern(100_000))
        await st.drain()
        await asyncio.sleep(0.1)
        await asyncio.get_running_loop().run_in_executor(None, server.trigger_shutdown)
        await asyncio.sleep(0.1)
        st.write_body(pattern(100_000))
        await st.drain()
        st.finish_body()
        resp = await st.read_response_header()
        body = b""
        while (d := await st.read_body()) is not None:
            body += d
        st.close()
        return conn.is_usable(), resp.status, json.loads(body)

    with ServerThread() as s:
        usable, status, doc = run(main(s))
    assert not usable and status == 200
    assert doc["length"] == 200_000
    assert doc["sha256"] == hashlib.sha256(pattern(100_000) * 2).hexdigest()


def test_available_streams_follows_the_peer_limit():
    from propylon.protocols.http.v2.server import H2Options

    async def main(port):
        conn = await connect("127.0.0.1", port)
        await conn.ping()  # by the PING answer, the server's SETTINGS have arrived
        before = conn.available_streams()
        streams = [conn.open_stream() for _ in range(3)]
        full = conn.available_streams()
        for st in streams:
            st.close()
        after = conn.available_streams()
        conn.close()
        return before, full, after

    with ServerThread(options=H2Options(max_concurrent_streams=3)) as s:
        before, full, after = run(main(s.port))
    assert (before, full, after) == (3, 0, 3)
