"""gRPC (health, echo, streaming), the WebSocket echo, the CONNECT proxy and the blackhole."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from websockets.asyncio.client import connect as ws_connect

from propylon.lab import Lab
from propylon.lab.grpc_echo import echo_server_stream, echo_unary

from lab_support import curl, hostport


def _grpc_channels(lab: Lab) -> list[grpc.Channel]:
    host, port = hostport(lab, "grpc", "grpc")
    shost, sport = hostport(lab, "grpc", "grpcs")
    creds = grpc.ssl_channel_credentials(lab.certs.ca_cert.read_bytes())
    secure = grpc.secure_channel(f"{shost}:{sport}", creds,
                                 options=[("grpc.ssl_target_name_override", "grpc.propylon.test")])
    return [grpc.insecure_channel(f"{host}:{port}"), secure]


def test_grpc_health_check_on_h2c_and_tls(elab: Lab) -> None:
    for channel in _grpc_channels(elab):
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            reply = stub.Check(health_pb2.HealthCheckRequest(service="propylon.lab.Echo"), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_echo_unary_with_metadata_and_trailer(elab: Lab) -> None:
    for channel in _grpc_channels(elab):
        with channel:
            reply, call = echo_unary(channel).with_call({"message": "hi"}, timeout=5,
                                                        metadata=[("x-test", "yes")])
            assert reply["message"] == "hi" and reply["metadata"]["x-test"] == "yes"
            assert ("x-lab-trailer", "echo") in tuple(call.trailing_metadata())


def test_grpc_echo_failure_status_and_server_streaming(elab: Lab) -> None:
    channel = _grpc_channels(elab)[0]
    with channel:
        with pytest.raises(grpc.RpcError) as err:
            echo_unary(channel)({"message": "x", "code": 5, "details": "nope"}, timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details() == "nope"
        replies = list(echo_server_stream(channel)({"message": "s", "count": 4}, timeout=5))
        assert [r["index"] for r in replies] == [0, 1, 2, 3]
        assert all(r["message"] == "s" for r in replies)


def test_grpc_over_curl_shows_grpc_status_on_h2c_and_tls(elab: Lab, tmp_path: Path) -> None:
    frame = tmp_path / "frame.bin"
    frame.write_bytes(b"\x00\x00\x00\x00\x00")  # one gRPC message: an empty HealthCheckRequest
    _, port = hostport(elab, "grpc", "grpc")
    _, sport = hostport(elab, "grpc", "grpcs")
    for args in (["--http2-prior-knowledge", f"http://127.0.0.1:{port}"],
                 ["--cacert", str(elab.certs.ca_cert), "--resolve", f"grpc.propylon.test:{sport}:127.0.0.1",
                  f"https://grpc.propylon.test:{sport}"]):
        out = curl("-i", "-H", "Content-Type: application/grpc", "-H", "TE: trailers",
                   "--data-binary", f"@{frame}", *args[:-1], args[-1] + "/grpc.health.v1.Health/Check")
        assert out.stdout.startswith("HTTP/2 200"), out.stderr
        assert "content-type: application/grpc" in out.stdout.lower()
        assert "grpc-status: 0" in out.stdout.lower()


def test_websocket_echo(elab: Lab) -> None:
    async def main() -> None:
        async with ws_connect(elab.url("websocket") + "/chat") as ws:
            await ws.send("Ping #1")
            assert await ws.recv() == "Ping #1"
            await ws.send(b"\x00\x01binary")
            assert await ws.recv() == b"\x00\x01binary"
            latency = await asyncio.wait_for(await ws.ping(), 5)
            assert latency >= 0
            await ws.send("__handshake__")
            doc = json.loads(await ws.recv())
            assert doc["path"] == "/chat"
            assert any(k.lower() == "upgrade" for k, _ in doc["headers"])
        async with ws_connect(elab.url("websocket") + "/stamp") as ws:
            await ws.send("hello")
            reply = await ws.recv()
            assert reply.startswith("Echo [") and reply.endswith("]: hello")
    asyncio.run(main())


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_connect_tunnel_to_blue_over_a_raw_socket(elab: Lab) -> None:
    phost, pport = hostport(elab, "forward-proxy")
    bhost, bport = hostport(elab, "blue")
    with socket.create_connection((phost, pport), timeout=5) as s:
        s.sendall(f"CONNECT {bhost}:{bport} HTTP/1.1\r\nHost: {bhost}:{bport}\r\n\r\n".encode())
        assert _read_head(s).startswith(b"HTTP/1.1 200 Connection Established")
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: blue\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["member"] == "blue"


def test_connect_tunnel_carries_tls_to_a_lab_name(elab: Lab) -> None:
    phost, pport = hostport(elab, "forward-proxy")
    _, hport = hostport(elab, "advanced-https")
    out = curl("--cacert", str(elab.certs.ca_cert), "-p", "-x", f"http://{phost}:{pport}",
               f"https://advanced.propylon.test:{hport}/")
    assert out.stdout == "Response from Advanced Upstream (HTTPS + HTTP/2)", out.stderr


def test_connect_refuses_non_loopback_and_other_methods(elab: Lab) -> None:
    phost, pport = hostport(elab, "forward-proxy")
    for request, status in ((b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", b"403"),
                            (b"CONNECT 10.1.2.3:80 HTTP/1.1\r\n\r\n", b"403"),
                            (b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n", b"405")):
        with socket.create_connection((phost, pport), timeout=5) as s:
            s.sendall(request)
            assert _read_head(s).split(b" ")[1] == status


def test_blackhole_connect_times_out(elab: Lab) -> None:
    host, port = hostport(elab, "blackhole")
    for _ in range(2):  # a second client hangs too: the queue stays full
        t0 = time.monotonic()
        with pytest.raises((socket.timeout, TimeoutError)):
            socket.create_connection((host, port), timeout=1.0).close()
        assert 0.9 <= time.monotonic() - t0 < 3
