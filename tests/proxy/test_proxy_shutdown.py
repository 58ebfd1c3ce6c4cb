"""SIGTERM lets in-flight proxied requests finish; idle keep-alive connections close."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

from proxy_support import start_forwarder


def test_inflight_request_survives_sigterm(lab):
    port, proc = start_forwarder(lab.address("blue"))
    try:
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
