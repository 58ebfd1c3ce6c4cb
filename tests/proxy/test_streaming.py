"""1 GiB up and 1 GiB down through the proxy with flat memory (peak RSS < 150 MB)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from proxy_support import start_forwarder

GIB = 1 << 30


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def forwarder(lab):
    port, proc = start_forwarder(lab.address("blue"))
    try:
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.timeout(300)
def test_one_gib_each_way_with_flat_memory(forwarder):
    port, proc = forwarder
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{http_code}",
         f"http://127.0.0.1:{port}/size?bytes={GIB}"], capture_output=True, text=True, timeout=240)
    assert out.stdout == f"{GIB} 200"
    up = subprocess.run(f"head -c {GIB} /dev/zero | curl -s -T - http://127.0.0.1:{port}/echo",
                        shell=True, capture_output=True, timeout=240)
    assert json.loads(up.stdout)["body_length"] == GIB
    peak = peak_rss_mb(proc.pid)
    print(f"proxy peak RSS: {peak:.1f} MB")
    assert peak < 150
