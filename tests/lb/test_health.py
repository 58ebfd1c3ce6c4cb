"""Health checks over real loopback sockets: TCP, HTTP, flip logic, logging."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time

import pytest

from propylon.errors import Error, ErrorType
from propylon.lb import (
    Backend,
    Backends,
    Health,
    HealthCheck,
    HttpHealthCheck,
    LoadBalancer,
    Static,
    TcpHealthCheck,
)

from lb_support import Blackhole, LagMeter, TinyHttp
from support import free_port


# --- flip logic ---------------------------------------------------------------------
def test_flip_logic_counts_consecutive_opposite_results():
    h = Health()
    assert h.healthy and h.enabled
    assert not h.observe(False, 3)
    assert not h.observe(False, 3)
    assert not h.observe(True, 1)  # agrees with "healthy": counter reset
    assert not h.observe(False, 3)
    assert not h.observe(False, 3)
    assert h.observe(False, 3)  # third in a row flips
    assert not h.healthy and h.counter == 0
    assert not h.observe(True, 2)
    assert h.observe(True, 2)
    assert h.healthy


# --- TCP ----------------------------------------------------------------------------
def test_tcp_check_marks_a_stopped_backend_unhealthy_and_restores_it(lb_log):
    async def main():
        a, b = await TinyHttp().start(), await TinyHttp().start()
        lb = LoadBalancer.try_from_iter([a.backend, b.backend])
        lb.set_health_check(TcpHealthCheck(consecutive_failure=2, connection_timeout=0.5))
        await lb.backends.run_health_check()
        assert {lb.select() for _ in range(4)} == {a.backend, b.backend}

        await a.stop()
        await lb.backends.run_health_check()
        assert lb.backends.ready(a.backend)  # one failure of two needed
        await lb.backends.run_health_check(parallel=True)
        assert not lb.backends.ready(a.backend)
        assert [lb.select() for _ in range(6)] == [b.backend] * 6

        snapshot = {row.backend: row for row in lb.health_snapshot()}
        assert not snapshot[a.backend].healthy and snapshot[a.backend].enabled
        assert isinstance(snapshot[a.backend].last_error, Error)
        assert snapshot[a.backend].last_error.etype == ErrorType.CONNECT_REFUSED
        assert snapshot[b.backend].healthy and snapshot[b.backend].last_error is None

        await a.start(a.port)  # back on the same port
        await lb.backends.run_health_check()
        assert lb.backends.ready(a.backend)
        assert {lb.select() for _ in range(4)} == {a.backend, b.backend}
        await a.stop()
        await b.stop()
        return a.backend

    down = asyncio.run(main())
    records = [(r.levelname, r.getMessage()) for r in lb_log.records]
    prefix = f"{down!r} becomes unhealthy, Upstream ConnectRefused context: while connecting to {down.addr}"
    assert [lvl for lvl, m in records if m.startswith(prefix)] == ["WARNING"]
    assert [lvl for lvl, m in records if m == f"{down!r} becomes healthy"] == ["INFO"]


def test_tcp_check_times_out_on_a_connect_that_hangs():
    hole = Blackhole()

    async def main():
        loop = asyncio.get_running_loop()
        with LagMeter() as lag:
            t0 = loop.time()
            with pytest.raises(Error) as e:
                await TcpHealthCheck(connection_timeout=0.3).check(hole.backend)
            elapsed = loop.time() - t0
        return e.value, elapsed, lag.max_lag

    try:
        err, elapsed, lag = asyncio.run(main())
    finally:
        hole.close()
    assert err.etype == ErrorType.CONNECT_TIMEDOUT
    assert 0.25 < elapsed < 0.8
    assert lag < 0.1


def test_tcp_check_on_a_unix_socket_backend(tmp_path):
    async def main():
        path = str(tmp_path / "b.sock")
        server = await asyncio.start_unix_server(lambda r, w: w.close(), path)
        check = TcpHealthCheck()
        await check.check(Backend(f"unix:{path}"))
        server.close()
        await server.wait_closed()
        with pytest.raises(Error) as e:
            await check.check(Backend(f"unix:{tmp_path}/missing.sock"))
        assert e.value.etype == ErrorType.CONNECT_REFUSED

    asyncio.run(main())


def _self_signed(tmp_path, name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_tls_check_verifies_the_certificate_for_the_sni(tmp_path):
    cert, key = _self_signed(tmp_path, "hc.propylon.test")

    async def main():
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        seen_sni = []
        server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
        backend = Backend(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
        client_ctx = ssl.create_default_context(cafile=cert)
        await TcpHealthCheck.new_tls("hc.propylon.test", client_ctx).check(backend)
        assert seen_sni == ["hc.propylon.test"]
        with pytest.raises(Error) as e:
            await TcpHealthCheck.new_tls("other.propylon.test", client_ctx).check(backend)
        assert e.value.etype == ErrorType.INVALID_CERT
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_https_check_uses_the_host_as_sni(tmp_path):
    cert, key = _self_signed(tmp_path, "api.propylon.test")

    async def main():
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        srv = await TinyHttp(body=b"secure").start(ssl=server_ctx)
        hc = HttpHealthCheck("api.propylon.test", tls=True, ssl_context=ssl.create_default_context(cafile=cert))
        await hc.check(srv.backend)
        await srv.stop()
        return srv.requests

    (request,) = asyncio.run(main())
    assert b"\r\nHost: api.propylon.test\r\n" in request


# --- HTTP ---------------------------------------------------------------------------
def test_http_check_passes_on_200_and_sends_host_and_path():
    async def main():
        srv = await TinyHttp(body=b"Response from BLUE").start()
        hc = HttpHealthCheck("blue.propylon.test", path="/healthz")
        await hc.check(srv.backend)
        await srv.stop()
        return srv.requests

    (request,) = asyncio.run(main())
    assert request.startswith(b"GET /healthz HTTP/1.1\r\n")
    assert b"\r\nHost: blue.propylon.test\r\n" in request
    assert b"\r\nConnection: close\r\n" in request


def test_http_check_fails_on_wrong_status():
    async def main():
        srv = await TinyHttp(status=503).start()
        with pytest.raises(Error) as e:
            await HttpHealthCheck("localhost").check(srv.backend)
        await srv.stop()
        return e.value

    err = asyncio.run(main())
    assert err.etype == ErrorType.custom_code("non 200 code", 503)


def test_http_check_validator_inspects_the_body():
    def must_say_blue(status, headers, body):
        assert headers["content-type"] == "text/plain"
        if b"BLUE" not in body:
            raise Error.explain(ErrorType.custom("InvalidBody"), "Body validation failed")

    async def main():
        blue = await TinyHttp(body=b"Response from BLUE").start()
        green = await TinyHttp(body=b"Response from GREEN").start()
        lb = LoadBalancer.try_from_iter([blue.backend, green.backend])
        lb.set_health_check(HttpHealthCheck("localhost", validator=must_say_blue))
        await lb.backends.run_health_check(parallel=True)
        picks = {lb.select() for _ in range(6)}
        errors = {row.backend: row.last_error for row in lb.health_snapshot()}
        # a validator may also just return False
        hc = HttpHealthCheck("localhost", validator=lambda s, h, b: b.endswith(b"BLUE"))
        await hc.check(blue.backend)
        with pytest.raises(Error):
            await hc.check(green.backend)
        await blue.stop()
        await green.stop()
        return picks, errors, blue.backend, green.backend

    picks, errors, blue, green = asyncio.run(main())
    assert picks == {blue}
    assert errors[blue] is None
    assert errors[green].etype == ErrorType.custom("InvalidBody")


def test_http_check_times_out_on_a_frozen_backend_without_stalling_the_loop():
    async def main():
        frozen = await TinyHttp(freeze=True).start()
        healthy = await TinyHttp().start()
        lb = LoadBalancer.try_from_iter([frozen.backend, healthy.backend])
        lb.set_health_check(HttpHealthCheck("localhost", read_timeout=0.3, connection_timeout=0.3))
        loop = asyncio.get_running_loop()
        with LagMeter() as lag:
            t0 = loop.time()
            await lb.backends.run_health_check(parallel=False)
            elapsed = loop.time() - t0
        ready = (lb.backends.ready(frozen.backend), lb.backends.ready(healthy.backend))
        err = {r.backend: r.last_error for r in lb.health_snapshot()}[frozen.backend]
        await frozen.stop()
        await healthy.stop()
        return elapsed, lag, ready, err, frozen.connections

    elapsed, lag, ready, err, connections = asyncio.run(main())
    assert connections == 1  # it did accept: only the read timeout can catch it
    assert ready == (False, True)
    assert err.etype == ErrorType.READ_TIMEDOUT
    assert 0.25 < elapsed < 1.0  # one timeout, not more
    assert lag.ticks > 20 and lag.max_lag < 0.1, lag.max_lag


def test_parallel_checks_cost_one_timeout_for_many_hanging_backends():
    async def main():
        frozen = [await TinyHttp(freeze=True).start() for _ in range(5)]
        lb = LoadBalancer.try_from_iter([f.backend for f in frozen])
        lb.set_health_check(HttpHealthCheck("localhost", read_timeout=0.3))
        t0 = time.monotonic()
        await lb.backends.run_health_check(parallel=True)
        elapsed = time.monotonic() - t0
        for f in frozen:
            await f.stop()
        return elapsed, lb.select()

    elapsed, picked = asyncio.run(main())
    assert elapsed < 0.9
    assert picked is None


def test_http_check_port_override_and_connect_refused():
    async def main():
        health_port = await TinyHttp().start()
        backend = Backend(f"127.0.0.1:{free_port()}")  # the service port itself is closed
        await HttpHealthCheck("localhost", port_override=health_port.port).check(backend)
        with pytest.raises(Error) as e:
            await HttpHealthCheck("localhost").check(backend)
        await health_port.stop()
        return e.value

    assert asyncio.run(main()).etype == ErrorType.CONNECT_REFUSED


def test_http_check_reuse_connection_keeps_one_connection():
    async def main():
        srv = await TinyHttp().start()
        hc = HttpHealthCheck("localhost", reuse_connection=True)
        for _ in range(3):
            await hc.check(srv.backend)
        hc.close()
        await srv.stop()
        return srv.connections, len(srv.requests)

    assert asyncio.run(main()) == (1, 3)


def test_http_check_rejects_oversized_body():
    async def main():
        srv = await TinyHttp(body=b"x" * (1024 * 1024 + 10)).start()
        with pytest.raises(Error) as e:
            await HttpHealthCheck("localhost").check(srv.backend)
        await srv.stop()
        return e.value

    assert asyncio.run(main()).etype == ErrorType.READ_ERROR


def test_http_check_reads_interim_heads_and_a_chunked_body_with_trailers():
    seen = []

    async def main():
        srv = await TinyHttp(raw=b"HTTP/1.1 100 Continue\r\n\r\n"
                                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Role: primary\r\n\r\n"
                                 b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n").start()
        hc = HttpHealthCheck("localhost", validator=lambda *r: seen.append(r) or True)
        await hc.check(srv.backend)
        await srv.stop()

    asyncio.run(main())
    ((status, headers, body),) = seen
    assert (status, body) == (200, b"hello world")
    assert headers["x-role"] == "primary"
    assert "transfer-encoding" not in headers  # hop-by-hop: the probe's own framing


@pytest.mark.parametrize("reply, etype", [
    # Both framings at once: the proxy's client refuses it, so the check fails too.
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
     ErrorType.INVALID_HTTP_HEADER),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", ErrorType.CONNECTION_CLOSED),  # cut short
    (b"HTTP/1.1 2000 OK\r\n\r\n", ErrorType.INVALID_HTTP_HEADER),
])
def test_http_check_fails_on_a_malformed_or_truncated_response(reply, etype):
    async def main():
        srv = await TinyHttp(raw=reply).start()
        with pytest.raises(Error) as e:
            await HttpHealthCheck("localhost").check(srv.backend)
        await srv.stop()
        return e.value

    assert asyncio.run(main()).etype == etype


# --- custom checks and callbacks --------------------------------------------------------
def test_custom_check_and_status_change_callback():
    class Flaky(HealthCheck):
        def __init__(self):
            self.fail = set()

        async def check(self, backend):
            if backend.port in self.fail:
                raise Error.explain(ErrorType.custom("Down"), "told to fail")

    async def main():
        hc = Flaky()
        changes = []

        async def on_change(backend, healthy):
            changes.append((backend.port, healthy))

        hc.health_changed_callback = on_change
        backends = Backends(Static.from_iter(["127.0.0.1:1", "127.0.0.1:2"]), hc)
        await backends.update()
        hc.fail = {2}
        await backends.run_health_check()
        await backends.run_health_check()
        hc.fail = set()
        await backends.run_health_check()
        return changes

    assert asyncio.run(main()) == [(2, False), (2, True)]


def test_unknown_backend_is_ready_only_without_health_check():
    backends = Backends(Static.from_iter(["127.0.0.1:1"]))
    backends.apply(backends.discovery.get())
    stranger = Backend("127.0.0.1:9")
    assert backends.ready(stranger)
    backends.set_health_check(TcpHealthCheck())
    assert not backends.ready(stranger)
    assert backends.ready(Backend("127.0.0.1:1"))
