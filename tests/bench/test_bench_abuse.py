"""The abuse harness's pieces, checked for real: its raw HTTP/2 frames are read back
by the ``h2`` library's server side, its frame scanner reads what ``h2`` writes, its
origin counts and hangs over loopback, and one short run against nginx fills a row."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest

from bench.attacks import Origin, FrameScanner, request_block, reset_pairs, frame

REPO = Path(__file__).resolve().parents[2]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def server_events(data: bytes) -> list:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    return conn.receive_data(PREFACE + frame(4, 0, 0) + data)


def test_reset_pairs_are_requests_then_cancels_to_a_real_codec():
    events = server_events(reset_pairs(request_block(443), 1, 3))
    got = [(type(e).__name__, e.stream_id) for e in events
           if isinstance(e, (h2.events.RequestReceived, h2.events.StreamReset))]
    assert got == [("RequestReceived", 1), ("StreamReset", 1), ("RequestReceived", 3), ("StreamReset", 3),
                   ("RequestReceived", 5), ("StreamReset", 5)]
    request = next(e for e in events if isinstance(e, h2.events.RequestReceived))
    assert (b":authority", b"127.0.0.1:443") in request.headers


def test_ping_frames_are_pings_to_a_real_codec():
    events = server_events(frame(6, 0, 0, b"\0" * 8) * 3)
    assert sum(isinstance(e, h2.events.PingReceived) for e in events) == 3


def test_scanner_reads_goaway_codes_and_resets_written_by_h2():
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    conn.receive_data(PREFACE + frame(4, 0, 0) + frame(1, 0x5, 1, request_block(1)))
    conn.reset_stream(1, h2.errors.ErrorCodes.REFUSED_STREAM)
    conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
    data = conn.data_to_send()
    scanner = FrameScanner()
    for i in range(0, len(data), 7):  # arbitrary cuts: frames span reads
        scanner.feed(data[i:i + 7])
    assert scanner.goaway == "ENHANCE_YOUR_CALM" and scanner.resets == 1
    assert scanner.summary(None) == "GOAWAY ENHANCE_YOUR_CALM, 1 RST_STREAM"


def _get(port: int, timeout: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        try:
            return s.recv(1024)
        except socket.timeout:
            return b""


def test_origin_counts_answers_and_hangs():
    origin = Origin()
    try:
        assert _get(origin.port, 5).endswith(b"hello")
        origin.hang()
        assert _get(origin.port, 0.5) == b""
        assert origin.requests == 2
    finally:
        origin.close()


@pytest.mark.skipif(not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")) or not shutil.which("h2load"),
                    reason="needs nginx and h2load")
def test_one_attack_against_nginx_fills_a_row(tmp_path: Path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "bench.abuse", "--only", "ping", "--servers", "nginx",
                           "--duration", "1", "--legit-requests", "200"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("h2 PING flood"))
    assert "nginx" in row and "(alone " in row
    assert not list(tmp_path.glob("propylon-abuse-*"))  # the run cleaned up after itself
