"""SIGTERM lets in-flight proxied requests finish; idle keep-alive connections close."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("proxy did not start")


def test_inflight_request_survives_sigterm(lab):
    port = free_port()
    host, up = lab.address("blue")
    proc = subprocess.Popen([sys.executable, str(HERE / "run_forwarder.py"), str(port), f"{host}:{up}"])
    try:
        wait_port(port)
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        result = {}

        def slow():
            out = subprocess.run(["curl", "-s", "-w", " %{http_code}", f"http://127.0.0.1:{port}/slow?ms=1500"],
                                 capture_output=True, text=True, timeout=20)
            result["out"] = out.stdout

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.4)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # the idle keep-alive connection is closed by the shutdown
        idle.settimeout(3)
        assert idle.recv(10) == b""
        t.join(10)
        assert result["out"] == "Response from BLUE 200"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
