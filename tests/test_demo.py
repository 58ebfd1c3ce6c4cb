"""README command one: `propylon run` with no config starts the embedded demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from support import wait_port


def curl(url: str) -> str:
    return subprocess.run(["curl", "-s", "-i", url], capture_output=True, text=True, timeout=10).stdout


def test_demo_gateway_runs_and_stops(tmp_path):
    env = dict(os.environ, PROPYLON_LOG="info")
    proc = subprocess.Popen([sys.executable, "-m", "propylon", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_port(6188, timeout=20)
        bodies = {curl("http://127.0.0.1:6188/").rsplit("\n", 1)[-1] for _ in range(4)}
        assert bodies == {"Response from BLUE", "Response from GREEN"}
        assert "X-Propylon-Upstream: 127.0.0.1:1808" in curl("http://127.0.0.1:6188/")
        assert curl("http://127.0.0.1:6188/admin").startswith("HTTP/1.1 403")
        assert "propylon_demo_requests_total" in curl("http://127.0.0.1:6192/metrics")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "Propylon demo gateway" in out
