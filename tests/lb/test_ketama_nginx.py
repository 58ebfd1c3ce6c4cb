"""Consistent hashing picks the same upstream as a real nginx ``hash ... consistent``.

nginx listens on a Unix socket in a temp dir and proxies to loopback ports where
nothing listens (each request fails fast with 502, which is fine: with
``proxy_next_upstream off`` the access log still records the upstream nginx chose).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from propylon.lb import Backend, Consistent, LoadBalancer

from support import free_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

CONF = """
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format up '$request_uri,$upstream_addr';
    upstream pool {{
        hash $request_uri consistent;
{servers}
    }}
    server {{
        listen unix:{d}/nginx.sock;
        location / {{
            access_log {d}/access.log up;
            proxy_connect_timeout 1s;
            proxy_next_upstream off;
            proxy_pass http://pool;
        }}
    }}
}}
"""


@pytest.mark.skipif(NGINX is None or shutil.which("curl") is None, reason="needs nginx and curl")
def test_consistent_matches_real_nginx():
    upstreams = [(f"127.0.0.{i + 1}:{free_port()}", w) for i, w in enumerate([1, 2, 3, 1, 5])]
    d = tempfile.mkdtemp(prefix="plb-ngx-", dir="/tmp")
    servers = "\n".join(f"        server {addr} weight={w} max_fails=0;" for addr, w in upstreams)
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(CONF.format(d=d, servers=servers))
    proc = subprocess.Popen([NGINX, "-p", d, "-c", f"{d}/nginx.conf"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(f"{d}/nginx.sock"):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.02)
        uris = [f"/user/{i}" for i in range(150)] + [f"/static/{i}/img.png" for i in range(150)]
        subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "--max-time", "20", "--unix-socket", f"{d}/nginx.sock"]
            + [f"http://nginx.test{u}" for u in uris],
            check=False,
            timeout=30,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    with open(f"{d}/access.log") as f:
        chosen = dict(line.strip().split(",", 1) for line in f if line.strip())
    shutil.rmtree(d, ignore_errors=True)
    assert len(chosen) == len(uris)

    lb = LoadBalancer.try_from_iter([Backend(a, w) for a, w in upstreams], selection=Consistent)
    mismatches = [(u, chosen[u], lb.select(u.encode()).addr) for u in uris if chosen[u] != lb.select(u.encode()).addr]
    assert mismatches == []
    # The trace is not degenerate: every upstream was chosen for some URI.
    assert set(chosen.values()) == {a for a, _ in upstreams}
