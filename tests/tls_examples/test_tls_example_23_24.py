"""Lessons 23 and 24 run as real processes, checked with real WebSocket and gRPC clients.

23: WebSocket frames through 6167 to the lab's echo over one upgraded connection,
also after a quiet spell; 24: grpcio over TLS + h2 to 6168, relayed as h2c to the
lab's gRPC server, with statuses carried in the trailers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from websockets.sync.client import connect

from propylon.lab.grpc_echo import echo_server_stream, echo_unary

from tlsex_support import (CA, LabGone, curl, retry_if_lab_vanishes, running,
                           upstream_unavailable_is_lab_gone)

#: How long the WebSocket stays silent: the lesson's 70 s (past a typical 60 s
#: HTTP read timeout) when PROPYLON_SLOW_TESTS=1, otherwise a few seconds.
IDLE_SECONDS = 70.0 if os.environ.get("PROPYLON_SLOW_TESTS") == "1" else 3.0


@retry_if_lab_vanishes
def test_lesson_23_self_driving_demo(tls_lab):
    """The example's own client: three pings and their stamped echoes in the log."""
    with running("23_websocket_upgrade.py", 6167) as ex:
        (end,) = ex.wait_count(r"Client: (Test Complete\.|failed: .*)", timeout=15)
        if end.startswith("failed") and "502" in end:
            raise LabGone(f"the demo client got {end}")
        assert end == "Test Complete.", ex.log()
        echoes = ex.wait_count(r"Client: Received 'Echo \[\d\d:\d\d:\d\d\]: (Ping #\d)'", count=3)
        assert echoes == ["Ping #1", "Ping #2", "Ping #3"]
        assert ex.wait_count(r"Proxy: Detected Upgrade Header: (\w+)") == ["websocket"]


@pytest.mark.timeout(3 * IDLE_SECONDS + 90)  # room for the reruns
@retry_if_lab_vanishes
def test_lesson_23_pings_over_one_connection_survive_idleness(tls_lab):
    """Three pings, a quiet spell of IDLE_SECONDS (70 s with PROPYLON_SLOW_TESTS=1,
    else 3 s), three more: all on one upgraded connection, none cut by a timeout.

    The client sends no keep-alive pings of its own; the lab's echo server pings
    every 20 s, as the websockets library does by default.
    """
    with running("23_websocket_upgrade.py", 6167, env={"WS_DEMO_CLIENT": "0"}) as ex:
        with upstream_unavailable_is_lab_gone(), \
                connect("ws://127.0.0.1:6167/stamp", proxy=None, open_timeout=5,
                        ping_interval=None, compression=None) as ws:
            # The upstream saw a real upgrade request, relayed by the proxy.
            ws.send("__handshake__")
            seen = {k.lower(): v for k, v in json.loads(ws.recv(timeout=5))["headers"]}
            assert seen["upgrade"].lower() == "websocket"
            assert "upgrade" in seen["connection"].lower()

            for i in (1, 2, 3):
                ws.send(f"Ping #{i}")
                assert ws.recv(timeout=5).endswith(f"]: Ping #{i}")
                time.sleep(0.2)

            time.sleep(IDLE_SECONDS)

            for i in (4, 5, 6):
                ws.send(f"Ping #{i}")
                reply = ws.recv(timeout=5)
                assert reply.startswith("Echo [") and reply.endswith(f"]: Ping #{i}")
            ws.send(b"\x00\x01binary")
            assert ws.recv(timeout=5) == b"\x00\x01binary"

        # One upgrade for all of it: the same connection carried every frame.
        assert ex.wait_count(r"Proxy: Detected Upgrade Header: (\w+)") == ["websocket"]


def _channel() -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(Path(CA).read_bytes())
    # never an HTTP proxy from the environment
    return grpc.secure_channel("localhost:6168", creds, options=[("grpc.enable_http_proxy", 0)])


@retry_if_lab_vanishes
def test_lesson_24_grpc_through_tls_h2(tls_lab):
    with running("24_grpc_proxy.py", 6168) as ex:
        with upstream_unavailable_is_lab_gone(), _channel() as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING

            items = list(echo_server_stream(channel)({"message": "tick", "count": 5}, timeout=10))
            assert [(i["message"], i["index"]) for i in items] == [("tick", n) for n in range(5)]

            reply, call = echo_unary(channel).with_call({"message": "hi"}, timeout=10)
            assert reply["message"] == "hi"
            assert call.code() == grpc.StatusCode.OK
            assert ("x-lab-trailer", "echo") in call.trailing_metadata()

            # A failing call: status and message travel in the trailers.
            with pytest.raises(grpc.RpcError) as err:
                echo_unary(channel)({"code": 5, "details": "no such thing"}, timeout=10)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            assert err.value.details() == "no such thing"

            # Streamed, not buffered: the first message arrives long before the last.
            started = time.monotonic()
            arrivals = [time.monotonic() - started
                        for _ in echo_server_stream(channel)({"message": "slow", "count": 3,
                                                              "interval_ms": 400}, timeout=10)]
            assert len(arrivals) == 3
            assert arrivals[2] - arrivals[0] > 0.6, arrivals  # two 0.4 s gaps, not a burst

            # Concurrent calls share the connections (h2 streams) on both sides.
            unary = echo_unary(channel)
            calls = [unary.future({"message": f"m{n}"}, timeout=10) for n in range(20)]
            assert [c.result()["message"] for c in calls] == [f"m{n}" for n in range(20)]
        ex.wait_count(r"Proxying gRPC request /grpc\.health\.v1\.Health/Check")
        ex.wait_count(r"Proxying gRPC request /propylon\.lab\.Echo/ServerStream")


@retry_if_lab_vanishes
def test_lesson_24_grpc_with_curl(tls_lab, tmp_path):
    """The seed's check: a hand-made gRPC call with curl; the status is a trailer."""
    empty_message = tmp_path / "req.bin"
    empty_message.write_bytes(b"\x00\x00\x00\x00\x00")  # uncompressed, zero length
    with running("24_grpc_proxy.py", 6168):
        r = curl("https://localhost:6168/grpc.health.v1.Health/Check", "--http2", "--cacert", CA,
                 "-H", "Content-Type: application/grpc", "-H", "TE: trailers",
                 "-X", "POST", "--data-binary", f"@{empty_message}")
        assert (r.status, r.http_version) == (200, "2")
        assert r.header("content-type") == "application/grpc"
        assert ("grpc-status", "0") in r.trailers  # after the body, not in the head
        assert r.header("grpc-status") is None
        # SERVING (1) as a length-prefixed HealthCheckResponse
        assert r.body.encode("latin-1") == b"\x00\x00\x00\x00\x02\x08\x01"
