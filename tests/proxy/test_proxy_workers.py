"""The proxy with `threads: 2`: two worker processes, each with its own pool, both serve."""

from __future__ import annotations

import json
import subprocess

from proxy_support import start_forwarder


def test_two_workers_proxy(lab, tmp_path):
    conf = tmp_path / "conf.yaml"
    conf.write_text("version: 1\nthreads: 2\nwork_stealing: false\n")
    port, proc = start_forwarder(lab.address("blue"), "-c", str(conf))
    try:
        clients = set()
        for _ in range(40):
            out = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/echo"],
                                 capture_output=True, text=True, timeout=10)
            doc = json.loads(out.stdout)
            clients.add(doc["client"])  # the proxy's side of its pooled upstream connection
            assert doc["path"] == "/echo"
        # Sequential requests reuse one pooled upstream connection per worker; with
        # one SO_REUSEPORT socket per worker the kernel spreads the 40 client
        # connections, so two workers show up as (at least) two upstream connections.
        assert len(clients) >= 2, clients
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
