"""The HTTP/2 probe the harness asks before loading a server with h2load."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.runner import BenchParams, Workbench  # noqa: E402
from bench.h2probe import h2_get_status  # noqa: E402


@pytest.mark.timeout(30)
@pytest.mark.skipif(not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")),
                    reason="needs nginx")
def test_probe_tells_an_h2_listener_from_an_http1_one(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    bench = Workbench(tmp_path, BenchParams(), {"nginx": nginx})
    try:
        h2 = bench.nginx_front("h2")
        port = int(h2.url.rsplit(":", 1)[1].strip("/"))
        assert h2_get_status(port) == 200

        # A TLS listener without http2: nginx refuses the h2-only ALPN offer outright
        # (older servers would pick no protocol; the probe reports either).
        tls = bench.nginx_front("tls")
        port = int(tls.url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises((OSError, RuntimeError), match="no application protocol|not h2"):
            h2_get_status(port)
    finally:
        bench.procs.stop_all()
