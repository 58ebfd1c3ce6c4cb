"""Varnish for the cache-hit scenarios: ``varnishd`` in the foreground on loopback.

The VCL is generated into the run's directory: one backend (the run's backend nginx)
and no other logic, so Varnish caches what the backend's ``Cache-Control`` allows
(the 1 KiB ``/1k`` for an hour) in a ``malloc`` store. ``-F`` keeps it in the
foreground so the run stops it like every other server; ``-n`` puts its working
directory inside the run's directory.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from .nginx import BACKEND_BODY
from .procs import BenchProcess, ProcessSet, StartError, free_port, lost_port_race, wait_http_ok

__all__ = ["VarnishServer", "render_vcl", "start_varnish"]


def render_vcl(backend_port: int) -> str:
    return (
        "vcl 4.1;\n"
        "backend bench_backend {\n"
        '    .host = "127.0.0.1";\n'
        f'    .port = "{backend_port}";\n'
        "}\n"
    )


@dataclass
class VarnishServer:
    proc: BenchProcess
    port: int


def start_varnish(procs: ProcessSet, varnishd: str, prefix: Path, workers: int, backend_port: int,
                  attempts: int = 3) -> VarnishServer:
    """Start varnishd on a free loopback port in front of ``backend_port``; wait for a
    200 through it. ``workers`` bounds its worker threads per pool (one pool)."""
    prefix.mkdir(parents=True, exist_ok=True)
    vcl = prefix / "bench.vcl"
    vcl.write_text(render_vcl(backend_port))
    for attempt in range(1, attempts + 1):
        port = free_port()
        argv = [varnishd, "-F", "-a", f"127.0.0.1:{port}", "-f", str(vcl), "-n", str(prefix / "work"),
                "-s", "malloc,256m", "-T", "none", "-j", "none",
                "-p", "thread_pools=1", "-p", f"thread_pool_min={max(5, workers * 8)}"]
        proc = procs.start("varnish", argv, prefix / "varnish.log", stop_signal=signal.SIGTERM)
        try:
            wait_http_ok(proc, port, expect_body=BACKEND_BODY, timeout=20.0)
        except StartError as exc:
            procs.stop(proc)
            if attempt == attempts or not lost_port_race(str(exc)):
                raise
            continue
        return VarnishServer(proc, port)
    raise AssertionError("unreachable")
