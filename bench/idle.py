"""Memory held by idle keep-alive HTTP/1 connections, Propylon against nginx.

    python -m bench.idle [--connections 5000]      (also: python -m bench.abuse --only idle)

For each server a fresh plain HTTP/1.1 front is started before the usual backend;
then ``N`` connections are opened, each makes one request, reads its response and
stays open, idle. The front's resident memory (its whole process group) is read
before and a second after; the difference divided by ``N`` is the figure. The soft
limit on open files is raised (up to the hard limit) so that the harness and the
servers it starts can hold the connections.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from .machine import find_tools, machine_info, missing_tools_message
from .procs import group_rss_bytes
from .runner import BenchParams, Target, Workbench

__all__ = ["idle_rows", "measure_idle", "raise_nofile"]

_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
_BATCH = 200


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (never past the hard
    limit; children inherit it). Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def _one_request(s: socket.socket) -> None:
    s.sendall(_REQUEST)
    buf = b""
    while not (b"\r\n\r\n" in buf and buf.endswith(b"hello")):
        data = s.recv(4096)
        if not data:
            raise ConnectionError("the front closed an idle-memory connection before answering")
        buf += data


def measure_idle(target: Target, connections: int) -> tuple[int, int]:
    """Open ``connections`` keep-alive connections to ``target`` (one request each) and
    return (RSS delta in bytes, connections still open after the settle time)."""
    port = target.port
    pgid = target.proc.popen.pid
    time.sleep(0.5)
    before = group_rss_bytes(pgid)
    socks: list[socket.socket] = []
    try:
        while len(socks) < connections:
            batch = [socket.create_connection(("127.0.0.1", port), timeout=10)
                     for _ in range(min(_BATCH, connections - len(socks)))]
            socks += batch
            for s in batch:
                _one_request(s)
        time.sleep(1.0)
        after = group_rss_bytes(pgid)
        still_open = sum(1 for s in socks if _is_open(s))
        return after - before, still_open
    finally:
        for s in socks:
            s.close()


def _is_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def idle_rows(bench: Workbench, servers: list[str], connections: int,
              progress: Callable[[str], None]) -> str:
    """Measure each server in turn; the result as a small table."""
    lines = [f"idle keep-alive HTTP/1.1 connections: {connections}, one request each",
             f"{'server':<10}  {'ΔRSS':>10}  {'per connection':>15}  still open"]
    for server in servers:
        progress(f"idle connections: {server}")
        target = (bench.nginx_front("proxy", tag=f"{server}-idle") if server == "nginx"
                  else bench.propylon_front(f"{server}-idle"))
        try:
            delta, still_open = measure_idle(target, connections)
        finally:
            bench.procs.stop(target.proc)
        lines.append(f"{server:<10}  {delta / 1e6:>8.1f} MB  {delta / connections / 1024:>12.2f} KB"
                     f"  {still_open}/{connections}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--servers", default="nginx,propylon")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    tools, missing = find_tools(["nginx"])
    if missing:
        print(missing_tools_message(missing), file=sys.stderr)
        return 2
    limit = raise_nofile(2 * args.connections + 256)
    if limit < args.connections + 64:
        print(f"open-file limit {limit} is too low for {args.connections} connections", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="propylon-idle-"))
    bench = Workbench(root, BenchParams(), tools)
    try:
        text = idle_rows(bench, [s for s in args.servers.split(",") if s], args.connections,
                         lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        bench.procs.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine_info(tools).items()))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
