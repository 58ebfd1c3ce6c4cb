"""Listening services: connection filter, Unix sockets, TLS, IPv6, address parsing."""

import asyncio
import datetime
import os
import socket
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from propylon.apps import ServerApp
from propylon.services import Service, TcpSocketOptions, background_service
from propylon.services.listeners import parse_tcp_addr

from server_inproc import run, start
from server_support import APPS, ask


class Greeter(ServerApp):
    """Counts the connections it sees and greets each peer."""

    def __init__(self):
        self.seen = []

    async def process_new(self, stream, shutdown):
        self.seen.append(stream.peer_addr)
        tls = stream.digest.tls
        extra = f" {tls.version}" if tls else ""
        await stream.write_all(f"hello {stream.peer_addr}{extra}\n".encode())
        return None


def _client(port, source="127.0.0.1"):
    try:
        return ask(port, timeout=3, source=source)
    except ConnectionResetError:
        return b"<reset>"


def test_connection_filter_refuses_before_app():
    async def main():
        app = Greeter()
        svc = Service("filtered", app)
        svc.add_tcp("127.0.0.1:0")
        asked = []

        def allow(peer):
            asked.append(peer)
            return peer[0] != "127.0.0.2"

        svc.set_connection_filter(allow)
        _, [(_, port)] = await start(svc)
        loop = asyncio.get_running_loop()
        denied = await loop.run_in_executor(None, _client, port, "127.0.0.2")
        allowed = await loop.run_in_executor(None, _client, port, "127.0.0.1")
        assert denied in (b"", b"<reset>")
        assert allowed.startswith(b"hello ('127.0.0.1', ")
        assert [p[0] for p in app.seen] == ["127.0.0.1"]  # the refused peer never reached the app
        assert [p[0] for p in asked] == ["127.0.0.2", "127.0.0.1"]
        svc.stop_accepting()
    run(main())


def test_connection_filter_in_a_server_process(procs, tmp_path):
    p = procs([APPS / "pid_server.py"], env={"PID_SERVER_DENY": "127.0.0.2"})
    port = p.port()
    assert _client(port, "127.0.0.2") in (b"", b"<reset>")
    assert int(_client(port, "127.0.0.1")) == p.pid


def test_unix_socket_endpoint_with_perms(tmp_path):
    path = str(tmp_path / "svc.sock")
    # A stale socket file from an earlier run must not block binding.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()

    async def main():
        app = Greeter()
        svc = Service("uds", app)
        svc.add_uds(path, perms=0o600)
        await start(svc)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        reader, writer = await asyncio.open_unix_connection(path)
        assert await reader.read() == b"hello None\n"
        writer.close()
        svc.stop_accepting()
    run(main())


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_path, key_path)
    client_ctx = ssl.create_default_context(cafile=str(cert_path))
    return server_ctx, client_ctx


@pytest.mark.parametrize("with_filter", [False, True])
def test_tls_endpoint(tmp_path, with_filter):
    server_ctx, client_ctx = _self_signed(tmp_path)

    async def main():
        app = Greeter()
        svc = Service("tls", app)
        svc.add_tls_context("127.0.0.1:0", server_ctx)
        if with_filter:
            svc.set_connection_filter(lambda peer: peer[0] == "127.0.0.1")
        _, [(_, port)] = await start(svc)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                       server_hostname="localhost")
        answer = await reader.readline()
        assert answer.startswith(b"hello ('127.0.0.1', ") and b"TLSv1.3" in answer
        writer.close()
        if with_filter:
            # Refused before the handshake: the client's TLS handshake fails.
            with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
                await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                              server_hostname="localhost",
                                              local_addr=("127.0.0.2", 0))
            assert len(app.seen) == 1
        svc.stop_accepting()
    run(main())


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("::1 not configured")

    async def main():
        svc = Service("v6", Greeter())
        svc.add_tcp("[::1]:0", TcpSocketOptions(ipv6_only=True, backlog=16))
        _, [(host, port, *_)] = await start(svc)
        assert host == "::1"
        reader, writer = await asyncio.open_connection("::1", port)
        assert (await reader.read()).startswith(b"hello ('::1', ")
        writer.close()
        svc.stop_accepting()
    run(main())


def test_parse_tcp_addr():
    assert parse_tcp_addr("127.0.0.1:6142") == ("127.0.0.1", 6142)
    assert parse_tcp_addr("[::1]:6142") == ("::1", 6142)
    assert parse_tcp_addr("0.0.0.0:0") == ("0.0.0.0", 0)
    for bad in ("6142", "127.0.0.1", "::1:80", "[::1:80", "host:99999", ":80", "h:x"):
        with pytest.raises(ValueError):
            parse_tcp_addr(bad)


def test_background_service_wraps_any_object_with_start():
    class Task:
        async def start(self, shutdown):
            await shutdown.wait()

    t = Task()
    svc = background_service("t", t)
    assert svc.task() is t and svc.name == "t" and not svc.run_once
    assert background_service("once", t, run_once=True).run_once
    with pytest.raises(TypeError):
        background_service("bad", object())
