"""The downstream HTTP/2 codec, served on loopback and driven by curl, h2load and raw h2."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import subprocess
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import pytest

from h2_support import (ServerThread, demo_handler, make_cert, proc_cpu_seconds, raw_h2_socket,
                        server_tls_context)
from propylon.protocols.http.header import ResponseHeader
from propylon.protocols.http.v2.server import H2Options, H2ServerConnection, H2ServerStream
from support import pattern, run_curl

pytestmark = pytest.mark.timeout(60)


def _url(server: ServerThread, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def test_curl_h2c_request_mapping_and_response_headers():
    with ServerThread() as s:
        r = run_curl("--http2-prior-knowledge", "-i", _url(s, "/echo?x=1"), "--data-binary", "hello",
                 "-H", "Cookie: a=1", "-H", "Cookie: b=2", "-H", "X-Custom: yes")
        assert r.returncode == 0, r.stderr
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/2 200")
        names = [ln.split(":")[0] for ln in lines[1:]]
        # Connection-specific fields never reach an HTTP/2 peer; content-length is kept.
        assert "transfer-encoding" not in names and "connection" not in names
        assert "content-length" in names
        doc = json.loads(body)
        assert doc["method"] == "POST" and doc["path"] == "/echo?x=1"
        assert doc["host"] == f"127.0.0.1:{s.port}" and doc["first_header"] == "Host"
        assert doc["scheme"] == "http" and doc["version"] == [2, 0]
        assert doc["length"] == 5 and doc["sha256"] == hashlib.sha256(b"hello").hexdigest()
        assert doc["cookie"] == "a=1; b=2"
        assert "x-custom" in doc["headers"]


def test_curl_over_tls_negotiates_h2(tmp_path):
    cert, key = make_cert(tmp_path)
    with ServerThread(ssl_ctx=server_tls_context(cert, key)) as s:
        r = run_curl("--http2", "-k", "-w", "\n%{http_version}", f"https://127.0.0.1:{s.port}/tls")
        assert r.returncode == 0, r.stderr
        body, _, version = r.stdout.rpartition(b"\n")
        assert version == b"2"
        doc = json.loads(body)
        assert doc["scheme"] == "https" and doc["path"] == "/tls"


def test_h2load_thousand_requests_all_succeed():
    with ServerThread() as s:
        r = subprocess.run(["h2load", "-n", "1000", "-c", "10", "-m", "10", _url(s, "/")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "1000 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
        assert "1000 2xx" in r.stdout


def test_head_and_204_have_no_data_and_trailers_arrive():
    with ServerThread() as s:
        r = run_curl("--http2-prior-knowledge", "-I", _url(s, "/big?n=1000"))
        assert r.returncode == 0, r.stderr
        assert b"content-length: 1000" in r.stdout
        r = run_curl("--http2-prior-knowledge", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                 _url(s, "/nobody"))
        assert r.stdout == b"204 0"
        r = run_curl("--http2-prior-knowledge", "-i", _url(s, "/trailers"))
        assert r.returncode == 0, r.stderr
        assert b"body before trailers" in r.stdout
        tail = r.stdout.split(b"body before trailers", 1)[1]
        assert b"x-checksum: abc123" in tail and b"x-done: yes" in tail


def test_large_download_and_upload_with_curl(tmp_path):
    upload = tmp_path / "up.bin"
    data = pattern(12_000_000)
    upload.write_bytes(data)
    with ServerThread() as s:
        r = run_curl("--http2-prior-knowledge", "-o", str(tmp_path / "down.bin"), "-w", "%{http_code}",
                 _url(s, "/big?n=10000000"))
        assert r.stdout == b"200", r.stderr
        assert (tmp_path / "down.bin").read_bytes() == pattern(10_000_000)
        r = run_curl("--http2-prior-knowledge", "--data-binary", f"@{upload}", _url(s, "/upload"))
        doc = json.loads(r.stdout)
        assert doc["length"] == len(data)
        assert doc["sha256"] == hashlib.sha256(data).hexdigest()


class _H2Client:
    """A bare HTTP/2 client on a blocking socket, written with the h2 library."""

    def __init__(self, port: int) -> None:
        self.sock = raw_h2_socket(port)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                         header_encoding=None))
        self.conn.initiate_connection()
        self.flush()
        self.events: list = []
        self.eof = False

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str, end: bool = True, method: str = "GET") -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":scheme", "http"),
                                     (":authority", "t.test"), (":path", path)], end_stream=end)
        return sid

    def pump(self, until, timeout: float = 5.0) -> None:
        """Read and process frames until ``until()`` is true, EOF or timeout."""
        deadline = time.monotonic() + timeout
        while not until() and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("nothing more arrived")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                break
            self.events.extend(self.conn.receive_data(data))
            self.flush()

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def close(self) -> None:
        self.sock.close()


def test_settings_advertise_limits_and_big_head_gets_431():
    with ServerThread(options=H2Options(max_concurrent_streams=100, max_header_list_size=64 * 1024)) as s:
        c = _H2Client(s.port)
        try:
            c.pump(lambda: c.of(h2.events.RemoteSettingsChanged))
            settings = c.conn.remote_settings
            assert settings.max_concurrent_streams == 100
            assert settings.max_header_list_size == 64 * 1024
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                                      (":path", "/"), ("x-big", "a" * 70_000)], end_stream=True)
            c.flush()
            c.pump(lambda: c.of(h2.events.ResponseReceived))
            status = dict(c.of(h2.events.ResponseReceived)[0].headers)[b":status"]
            assert status == b"431"
            # The connection is still good for the next request.
            sid = c.request("/ok")
            c.flush()
            c.pump(lambda: len(c.of(h2.events.ResponseReceived)) == 2)
            assert dict(c.of(h2.events.ResponseReceived)[1].headers)[b":status"] == b"200"
        finally:
            c.close()


def test_rapid_reset_client_gets_goaway_and_is_disconnected():
    with ServerThread() as s:
        c = _H2Client(s.port)
        sent = 0
        try:
            while not c.eof and sent < 5000:
                for _ in range(50):
                    sid = c.request("/")
                    c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    sent += 1
                try:
                    c.flush()
                except (BrokenPipeError, ConnectionResetError):
                    break
                c.sock.settimeout(0.001)
                try:
                    data = c.sock.recv(65536)
                    if not data:
                        c.eof = True
                    else:
                        c.events.extend(c.conn.receive_data(data))
                except (socket.timeout, BlockingIOError):
                    pass
                except ConnectionResetError:
                    c.eof = True
                if c.of(h2.events.ConnectionTerminated):
                    break
            c.pump(lambda: False, timeout=3) if not c.eof else None
        except (TimeoutError, h2.exceptions.ProtocolError):
            pass
        finally:
            c.close()
        goaways = c.of(h2.events.ConnectionTerminated)
        assert goaways, f"no GOAWAY after {sent} reset streams"
        assert goaways[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert sent < 5000
        # The connection is gone on the server too, and the server does no more work.
        deadline = time.monotonic() + 3
        while s.call(lambda: len(s.connections)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.call(lambda: len(s.connections)) == 0
        time.sleep(0.2)
        before = proc_cpu_seconds()
        time.sleep(0.5)
        assert proc_cpu_seconds() - before < 0.1


def test_slow_stream_does_not_block_a_fast_one():
    with ServerThread() as s:
        c = _H2Client(s.port)
        try:
            slow = c.request("/slow?ms=1500")
            fast = c.request("/fast")
            c.flush()
            start = time.monotonic()
            c.pump(lambda: any(e.stream_id == fast for e in c.of(h2.events.StreamEnded)))
            fast_took = time.monotonic() - start
            assert not any(e.stream_id == slow for e in c.of(h2.events.StreamEnded))
            c.pump(lambda: any(e.stream_id == slow for e in c.of(h2.events.StreamEnded)))
            slow_took = time.monotonic() - start
        finally:
            c.close()
        assert fast_took < 0.5 and slow_took >= 1.4


def test_request_body_waits_for_the_reader_flow_control():
    """A handler that does not read leaves the client stuck at the window."""
    seen: dict = {}

    async def lazy(st: H2ServerStream) -> bool:
        await asyncio.sleep(0.6)
        seen["buffered"] = sum(len(c) for c in st._chunks)
        sha = hashlib.sha256()
        n = 0
        while (d := await st.read_body()) is not None:
            sha.update(d)
            n += len(d)
        body = f"{n} {sha.hexdigest()}".encode()
        resp = ResponseHeader.build(200)
        resp.append_header("content-length", str(len(body)))
        st.write_header(resp)
        st.write_body(body)
        st.finish()
        return True

    opts = H2Options(initial_window_size=256 * 1024, connection_window_size=512 * 1024)
    data = pattern(8_000_000)
    with ServerThread(handler=lazy, options=opts) as s:
        c = _H2Client(s.port)
        try:
            sid = c.request("/up", end=False, method="POST")
            c.flush()
            c.pump(lambda: c.of(h2.events.RemoteSettingsChanged))
            sent = 0

            def progress() -> bool:
                return bool(c.of(h2.events.ResponseReceived))

            while sent < len(data):
                room = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size,
                           len(data) - sent)
                if room > 0:
                    c.conn.send_data(sid, data[sent:sent + room])
                    sent += room
                    c.flush()
                    continue
                n = len(c.events)
                c.pump(lambda: len(c.events) > n)
            c.conn.end_stream(sid)
            c.flush()
            c.pump(lambda: any(e.stream_id == sid for e in c.of(h2.events.StreamEnded)), timeout=20)
            body = b"".join(e.data for e in c.of(h2.events.DataReceived))
        finally:
            c.close()
        # Before the handler read anything, no more than the stream window had arrived.
        assert seen["buffered"] <= 256 * 1024
        assert body == f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode()


def test_response_waits_for_the_client_window():
    """A client that does not read keeps the server's response queue small."""
    state: dict = {}

    async def big(st: H2ServerStream) -> bool:
        st.write_header(ResponseHeader.build(200))
        total = 64 * 65536
        sent = 0
        while sent < total:
            st.write_body(pattern(65536))
            sent += 65536
            state["queued_max"] = max(state.get("queued_max", 0), st._out_len)
            if st.write_blocked:
                state["blocked"] = True
                await st.drain()
        st.finish()
        return True

    with ServerThread(handler=big) as s:
        c = _H2Client(s.port)
        try:
            sid = c.request("/")
            c.flush()
            c.pump(lambda: sum(len(e.data) for e in c.of(h2.events.DataReceived)) >= 65535 - 16384)
            time.sleep(0.3)
            # Nothing was acknowledged: the server stopped at our 64 KiB window.
            got = sum(len(e.data) for e in c.of(h2.events.DataReceived))
            assert got <= 65535
            for e in c.of(h2.events.DataReceived):
                c.conn.acknowledge_received_data(e.flow_controlled_length, sid)
            c.flush()
            done = lambda: any(e.stream_id == sid for e in c.of(h2.events.StreamEnded))  # noqa: E731
            while not done():
                n = len(c.events)
                c.pump(lambda: len(c.events) > n or done())
                for e in c.events[n:]:
                    if isinstance(e, h2.events.DataReceived):
                        c.conn.acknowledge_received_data(e.flow_controlled_length, sid)
                c.flush()
            body = b"".join(e.data for e in c.of(h2.events.DataReceived))
        finally:
            c.close()
        assert body == pattern(65536) * 64
        assert state["blocked"] and state["queued_max"] <= 65536


def test_client_reset_fails_read_body_and_calls_on_lost():
    seen: dict = {}

    async def upload(st: H2ServerStream) -> bool:
        st.on_lost = lambda: seen.setdefault("lost", True)
        try:
            while await st.read_body() is not None:
                pass
        except Exception as exc:  # noqa: BLE001 - the error is what we check
            seen["error"] = exc
        seen["closed"] = st.closed
        return True

    with ServerThread(handler=upload) as s:
        c = _H2Client(s.port)
        try:
            sid = c.request("/up", end=False, method="POST")
            c.conn.send_data(sid, b"x" * 1000)
            c.flush()
            time.sleep(0.2)
            c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            c.flush()
            deadline = time.monotonic() + 3
            while "closed" not in seen and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            c.close()
    assert seen.get("lost") is True and seen.get("closed") is True
    assert "reset" in str(seen["error"])


def test_connection_loss_calls_on_lost_for_every_open_stream():
    lost: list = []

    async def waiter(st: H2ServerStream) -> bool:
        st.on_lost = lambda: lost.append(st.stream_id)
        try:
            await st.read_body()
        except Exception:  # noqa: BLE001
            pass
        return True

    with ServerThread(handler=waiter) as s:
        c = _H2Client(s.port)
        for _ in range(3):
            c.request("/", end=False, method="POST")
        c.flush()
        time.sleep(0.2)
        c.sock.close()
        deadline = time.monotonic() + 3
        while len(lost) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert sorted(lost) == [1, 3, 5]


def test_graceful_shutdown_lets_inflight_stream_finish():
    with ServerThread() as s:
        c = _H2Client(s.port)
        try:
            sid = c.request("/slow?ms=700")
            c.flush()
            time.sleep(0.2)
            s.trigger_shutdown()
            c.pump(lambda: c.of(h2.events.ConnectionTerminated))
            goaway = c.of(h2.events.ConnectionTerminated)[0]
            assert goaway.error_code == 0 and goaway.last_stream_id == sid
            # h2 takes GOAWAY as final; the in-flight stream still completes.
            c.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
            c.pump(lambda: any(e.stream_id == sid for e in c.of(h2.events.StreamEnded)))
            status = dict(c.of(h2.events.ResponseReceived)[0].headers)[b":status"]
            assert status == b"200"
            c.pump(lambda: False, timeout=3)  # then the server closes the connection
            assert c.eof
        finally:
            c.close()


def test_close_if_idle_closes_an_idle_connection():
    with ServerThread() as s:
        c = _H2Client(s.port)
        try:
            c.pump(lambda: c.of(h2.events.RemoteSettingsChanged))
            s.call(lambda: [conn.close_if_idle() for conn in list(s.connections)])
            c.pump(lambda: False, timeout=3)
            assert c.eof and c.of(h2.events.ConnectionTerminated)
        finally:
            c.close()


def test_switch_from_http1_protocol_after_preface():
    """The app sniffs the client preface, then hands the transport to HTTP/2."""

    class Sniffer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.buf = b""

        def data_received(self, data):
            self.buf += data
            if len(self.buf) < 24:
                return
            assert self.buf.startswith(b"PRI * HTTP/2.0\r\n")
            p = H2ServerConnection(demo_handler, None, None)
            self.transport.set_protocol(p)
            p.connection_made(self.transport)
            p.data_received(self.buf)

    import threading

    import uvloop

    loop = uvloop.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    def main():
        asyncio.set_event_loop(loop)
        srv = loop.run_until_complete(loop.create_server(Sniffer, "127.0.0.1", 0))
        box["port"] = srv.sockets[0].getsockname()[1]
        box["srv"] = srv
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=main, daemon=True)
    t.start()
    try:
        assert ready.wait(5)
        r = run_curl("--http2-prior-knowledge", f"http://127.0.0.1:{box['port']}/switched", "-d", "abc")
        doc = json.loads(r.stdout)
        assert doc["path"] == "/switched" and doc["length"] == 3
    finally:
        loop.call_soon_threadsafe(box["srv"].close)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)


def test_handler_failure_resets_only_its_stream():
    async def flaky(st: H2ServerStream) -> bool:
        if st.req.path == "/boom":
            raise RuntimeError("bug in the handler")
        return await demo_handler(st)

    with ServerThread(handler=flaky) as s:
        c = _H2Client(s.port)
        try:
            boom = c.request("/boom")
            ok = c.request("/ok")
            c.flush()
            c.pump(lambda: c.of(h2.events.StreamReset)
                   and any(e.stream_id == ok for e in c.of(h2.events.StreamEnded)))
        finally:
            c.close()
    reset = c.of(h2.events.StreamReset)[0]
    assert reset.stream_id == boom and reset.error_code == h2.errors.ErrorCodes.INTERNAL_ERROR


def test_idle_connection_is_closed_after_idle_timeout():
    with ServerThread(options=H2Options(idle_timeout=0.3)) as s:
        c = _H2Client(s.port)
        try:
            c.request("/")
            c.flush()
            start = time.monotonic()
            c.pump(lambda: False, timeout=3)
            took = time.monotonic() - start
        finally:
            c.close()
    assert c.eof and c.of(h2.events.ResponseReceived)
    assert c.of(h2.events.ConnectionTerminated)[0].error_code == 0
    assert 0.25 < took < 2


def test_reset_guard_rules():
    from propylon.protocols.http.v2.guard import ResetGuard

    now = [0.0]
    g = ResetGuard(max_resets=5, window=1.0, min_streams=10, ratio=2.0, clock=lambda: now[0])
    for _ in range(5):
        assert not g.on_reset()
    now[0] = 1.5  # the old resets left the window
    for _ in range(3):
        assert not g.on_reset()
    # Ratio rule: past the first streams, resets may not outnumber 2x completed ones.
    g2 = ResetGuard(max_resets=1000, window=10.0, min_streams=10, ratio=2.0, clock=lambda: 0.0)
    for _ in range(5):
        g2.on_complete()
    tripped = [g2.on_reset() for _ in range(11)]
    assert tripped[-1] and not tripped[8]


def test_streams_over_the_limit_are_refused_not_the_connection():
    with ServerThread(options=H2Options(max_concurrent_streams=10)) as s:
        c = _H2Client(s.port)
        try:
            # Sent before the client has even read the server's SETTINGS.
            sids = [c.request("/slow?ms=300") for _ in range(15)]
            c.flush()
            done = lambda: len(c.of(h2.events.StreamEnded)) + len(c.of(h2.events.StreamReset)) >= 15  # noqa: E731
            c.pump(done)
            refused = [e.stream_id for e in c.of(h2.events.StreamReset)]
            assert all(e.error_code == h2.errors.ErrorCodes.REFUSED_STREAM for e in c.of(h2.events.StreamReset))
            assert len(refused) == 5 and set(refused) == set(sids[10:])
            assert len(c.of(h2.events.StreamEnded)) == 10
            again = c.request("/ok")  # the connection is still fine
            c.flush()
            c.pump(lambda: any(e.stream_id == again for e in c.of(h2.events.StreamEnded)))
        finally:
            c.close()


def test_expect_100_continue_is_answered_on_first_read(tmp_path):
    (tmp_path / "b.bin").write_bytes(pattern(300_000))
    with ServerThread() as s:
        r = run_curl("-v", "--http2-prior-knowledge", "-H", "Expect: 100-continue",
                 "--data-binary", f"@{tmp_path / 'b.bin'}", _url(s, "/e"))
    assert b"< HTTP/2 100" in r.stderr and b"< HTTP/2 200" in r.stderr
    assert json.loads(r.stdout)["length"] == 300_000
