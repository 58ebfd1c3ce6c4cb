"""``python -m bench.abuse``: Propylon and nginx attacked the same way, in the same run.

Each attack runs for a bounded window (``--duration``, default 5 s) against a fresh
front of each server, on loopback only, and every process stops by itself. For each
(attack, server) the table gives:

* **CPU s**: CPU seconds the front's process group used during the attack window;
* **peak ΔRSS**: the highest resident memory seen (sampled every 10 ms) minus the
  memory just before the attack;
* **cut off**: when the server cut the attacker off (ms after the attack started),
  or ``never`` within the window; **frames sent**: HTTP/2 frames the attacker wrote
  until then (what the server had to read, at most);
* **received**: what the attacker got (GOAWAY code, RST, statuses, nothing); the
  rapid-reset rows add how many of the attacker's requests reached the origin;
* **legit**: how long a concurrent well-behaved client took to complete its requests
  (h2load; ``--h1`` for the HTTP/1 attacks) against the same client with no attack.

The HTTP/2 attacks talk TLS with ALPN h2 to the ``h2`` fronts of ``python -m bench``
(nginx ``listen ssl http2``; ``bench/forwarder.py --alpn h2,http/1.1``). Two attacks
are about the upstream side: an origin that accepts and never answers (64 clients
ask through the front; with ``--hang-wait 65`` the window covers both servers'
60 s read timeouts) and a backend killed under ``wrk -c64`` (502 rate against the
success rate, and p99). ``--only idle`` measures the memory of idle keep-alive
connections (see ``bench/idle.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from . import attacks
from . import wrk as wrk_mod
from .attacks import Origin, Outcome
from .cli import on_sigterm, progress
from .idle import idle_rows, raise_nofile
from .machine import find_tools, machine_info, missing_tools_message
from .nginx import start_nginx
from .procs import group_cpu_seconds, group_rss_bytes
from .runner import BenchParams, Target, Workbench

__all__ = ["ATTACKS", "Row", "main"]

_LEGIT_REQUESTS = 2000
_SUCCEEDED = re.compile(r"^requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", re.M)


@dataclass
class Row:
    """One line of the table (sizes in bytes, times in seconds unless named ms)."""

    attack: str
    server: str
    cpu_s: float | None
    rss_delta: int | None
    cut_off: str  # "123 ms", "never" (within the window) or "—" (not an attack on a connection)
    frames: int  # HTTP/2 frames the attacker wrote (0 for the others)
    received: str
    legit: str


@dataclass(frozen=True)
class Attack:
    """How to run one attack: the kind of front it needs and the attacker."""

    key: str
    name: str
    front: str  # "h2" (TLS + ALPN h2) or "h1" (plain HTTP/1.1)
    run: Callable[[int, float], Outcome]
    #: Put the front before the counting origin and report how many of the
    #: attacker's requests reached it (cancelled streams should not).
    count_upstream: bool = False


ATTACKS: list[Attack] = [
    Attack("ping", "h2 PING flood (never reads)", "h2", attacks.ping_flood),
    Attack("settings", "h2 SETTINGS flood (never reads)", "h2", attacks.settings_flood),
    Attack("window_update", "h2 WINDOW_UPDATE flood", "h2", attacks.window_update_flood),
    Attack("rapid_reset", "h2 rapid reset, sustained", "h2", attacks.rapid_reset_sustained, True),
    Attack("rapid_reset_burst", "h2 rapid reset, 10k pairs in one write", "h2", attacks.rapid_reset_burst,
           True),
    Attack("continuation", "h2 CONTINUATION flood", "h2", attacks.continuation_flood),
    Attack("slowloris", "slowloris, 500 partial HTTP/1 heads", "h1", attacks.slowloris),
]
_SPECIAL = ("hang", "killed", "idle")
KNOWN = [a.key for a in ATTACKS] + list(_SPECIAL)


class _PeakRss:
    """Samples a process group's RSS every 10 ms in a thread; ``peak`` is the highest."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.base = group_rss_bytes(pgid)
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, group_rss_bytes(self.pgid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.base


class _Legit:
    """A well-behaved h2load run of ``requests`` requests, in a thread; ``took`` is
    its wall time, or None if it did not finish (or failed) within ``limit`` s."""

    def __init__(self, h2load: str, url: str, h1: bool, limit: float, requests: int) -> None:
        self.argv = [h2load, "-n", str(requests), "-c", "4", "-m", "1" if h1 else "10", url]
        if h1:
            self.argv.insert(1, "--h1")
        self.limit = limit
        self.took: float | None = None
        self.ok = 0
        self.note = ""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            done = subprocess.run(self.argv, capture_output=True, text=True, timeout=self.limit)
        except subprocess.TimeoutExpired:
            self.note = f"> {self.limit:.0f} s"
            return
        took = time.monotonic() - t0
        m = _SUCCEEDED.search(done.stdout)
        self.ok = ok = int(m.group(1)) if m else 0
        want = int(self.argv[self.argv.index("-n") + 1])
        self.took = took
        if ok < want:
            self.note = f"{ok}/{want} ok"

    def wait(self) -> str:
        self._thread.join()
        if self.took is None:
            return self.note or "failed"
        return f"{self.took:.2f} s" + (f" ({self.note})" if self.note else "")


def _fmt_ms(ms: float | None) -> str:
    return "never" if ms is None else f"{ms:.0f} ms"


def _fmt_mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:+.1f} MB"


class Harness:
    """Starts fronts in a :class:`Workbench`, runs attacks on them, collects rows."""

    def __init__(self, bench: Workbench, origin: Origin, window: float, hang_wait: float,
                 legit_requests: int, progress: Callable[[str], None]) -> None:
        self.bench = bench
        self.origin = origin
        self.window = window
        self.hang_wait = hang_wait
        self.legit_requests = legit_requests
        self.progress = progress
        self.rows: list[Row] = []

    def _front(self, server: str, kind: str, tag: str, backend_port: int | None = None) -> Target:
        b = self.bench
        if server == "nginx":
            return b.nginx_front("h2" if kind == "h2" else "proxy", tag=tag, backend_port=backend_port)
        return b.propylon_front(tag, tls_alpn="h2,http/1.1" if kind == "h2" else None,
                                backend_port=backend_port)

    def _legit(self, url: str, h1: bool, limit: float) -> _Legit:
        return _Legit(self.bench.tools["h2load"], url, h1, limit, self.legit_requests)

    def attack(self, attack: Attack, server: str) -> None:
        """One attack against a fresh front of ``server`` (``nginx`` or ``propylon``)."""
        self.progress(f"{attack.name}: {server}")
        origin_port = self.origin.port if attack.count_upstream else None
        target = self._front(server, attack.front, f"{server}-{attack.key}", backend_port=origin_port)
        port = target.port
        h1 = attack.front == "h1"
        try:
            baseline = self._legit(target.url, h1, limit=60).wait()
            pgid = target.proc.popen.pid
            rss = _PeakRss(pgid)
            cpu0 = group_cpu_seconds(pgid)
            upstream0 = self.origin.requests
            result: list[Outcome] = []

            def run() -> None:
                try:
                    result.append(attack.run(port, self.window))
                except (OSError, RuntimeError) as exc:  # e.g. refused before the first frame
                    result.append(Outcome(None, f"attacker failed: {type(exc).__name__}: {exc}"))

            runner = threading.Thread(target=run, daemon=True)
            runner.start()
            time.sleep(0.2)  # the attack is under way when the legit client starts
            legit = self._legit(target.url, h1, limit=max(30.0, 6 * self.window))
            runner.join(self.window + 30)
            cpu = group_cpu_seconds(pgid) - cpu0
            legit_text = legit.wait()
            delta = rss.stop()
            outcome = result[0] if result else Outcome(None, "attacker failed")
            received = outcome.received
            if attack.count_upstream:
                # What reached the origin beyond the legit client's completed requests.
                received += f"; {self.origin.requests - upstream0 - legit.ok} reached the origin"
            self.rows.append(Row(attack.name, server, cpu, delta, _fmt_ms(outcome.cut_off_ms),
                                 outcome.frames_sent, received, f"{legit_text} (alone {baseline})"))
        finally:
            self.bench.procs.stop(target.proc)

    def hang(self, server: str) -> None:
        """64 clients through a front whose origin accepts and never answers."""
        self.progress(f"origin never answers: {server}")
        origin = self.origin
        origin.hang(False)
        target = self._front(server, "h1", f"{server}-hang", backend_port=origin.port)
        port = target.port
        try:
            origin.hang(True)
            pgid = target.proc.popen.pid
            rss = _PeakRss(pgid)
            cpu0 = group_cpu_seconds(pgid)
            outcome = attacks.hung_requests(port, self.hang_wait)
            cpu = group_cpu_seconds(pgid) - cpu0
            self.rows.append(Row(f"origin never answers (64 clients, {self.hang_wait:.0f} s)", server,
                                 cpu, rss.stop(), _fmt_ms(outcome.cut_off_ms), 0, outcome.received, "—"))
        finally:
            origin.hang(False)
            self.bench.procs.stop(target.proc)

    def killed(self, server: str) -> None:
        """wrk -c64 through a front before and after its backend is killed."""
        self.progress(f"backend killed under load: {server}")
        b = self.bench
        backend = start_nginx(b.procs, b.tools["nginx"], "backend", b.root / f"{server}-doomed-backend",
                              b.params.workers)
        target = self._front(server, "h1", f"{server}-killed", backend_port=backend.port)
        try:
            alive = wrk_mod.run_wrk(b.tools["wrk"], target.url, connections=64, threads=1,
                                    duration=self.window)
            b.procs.stop(backend.proc)
            pgid = target.proc.popen.pid
            rss = _PeakRss(pgid)
            cpu0 = group_cpu_seconds(pgid)
            dead = wrk_mod.run_wrk(b.tools["wrk"], target.url, connections=64, threads=1,
                                   duration=self.window)
            cpu = group_cpu_seconds(pgid) - cpu0
            errors = dead.non_2xx + sum(dead.socket_errors.values())
            rate = errors / dead.duration_s if dead.duration_s else 0.0
            received = (f"5xx/errors {rate:,.0f}/s = {rate / alive.requests_per_sec:.2f}× "
                        f"the 2xx rate; p99 {dead.p99_ms} ms"
                        if alive.requests_per_sec else f"5xx/errors {rate:,.0f}/s")
            self.rows.append(Row("backend killed under wrk -c64", server, cpu, rss.stop(), "—", 0, received,
                                 f"alive: {alive.requests_per_sec:,.0f} req/s, p99 {alive.p99_ms} ms"))
        finally:
            b.procs.stop(target.proc)
            if backend.proc in b.procs.procs:
                b.procs.stop(backend.proc)


def render(rows: list[Row], machine: dict[str, str], command: str, window: float) -> str:
    """The table, with the machine and the command line above it."""
    head = ("attack", "server", "CPU s", "peak ΔRSS", "cut off", "frames sent", "received", "legit client")
    cells = [(r.attack, r.server, "—" if r.cpu_s is None else f"{r.cpu_s:.2f}", _fmt_mb(r.rss_delta),
              r.cut_off, f"{r.frames:,}" if r.frames else "—", r.received, r.legit) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
    lines = [
        "machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
        f"command: {command}",
        f"attack window {window:.0f} s; 'never' = not cut off within it",
        "",
        "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.abuse",
                                description="Attack Propylon and nginx the same way on 127.0.0.1 "
                                            "and compare what each survives.")
    p.add_argument("--duration", type=float, default=5.0,
                   help="seconds each attack lasts (default %(default)s)")
    p.add_argument("--hang-wait", type=float, default=None,
                   help="seconds the clients of a never-answering origin wait (default: --duration; "
                        "65 shows both servers' 60 s read timeouts)")
    p.add_argument("--legit-requests", type=int, default=_LEGIT_REQUESTS,
                   help="requests of the concurrent legit client (default %(default)s)")
    p.add_argument("--idle-connections", type=int, default=5000,
                   help="idle keep-alive connections for the idle-memory figure (default %(default)s)")
    p.add_argument("--only", action="append", metavar="NAME[,NAME]",
                   help=f"run only these (known: {', '.join(KNOWN)})")
    p.add_argument("--servers", default="nginx,propylon", help="which servers (default %(default)s)")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="also write the rows here")
    p.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    wanted = [n for item in (args.only or [",".join(KNOWN)]) for n in item.split(",") if n]
    unknown = [n for n in wanted if n not in KNOWN]
    servers = [s for s in args.servers.split(",") if s]
    if unknown:
        progress(f"unknown: {', '.join(unknown)}; known: {', '.join(KNOWN)}")
        return 2
    if not servers or not set(servers) <= {"nginx", "propylon"}:
        progress("--servers takes nginx, propylon or both")
        return 2
    if args.duration <= 0 or args.idle_connections < 1 or args.legit_requests < 1:
        progress("--duration, --idle-connections and --legit-requests must be > 0")
        return 2
    tools, missing = find_tools(["nginx", "h2load", "wrk"])
    if missing:
        progress(missing_tools_message(missing))
        return 2
    raise_nofile(2 * args.idle_connections + 256)
    machine = machine_info(tools)
    command = shlex.join(["python", "-m", "bench.abuse", *argv])
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="propylon-abuse-"))
    bench = Workbench(root, BenchParams(), tools)
    origin = Origin()
    harness = Harness(bench, origin, args.duration, args.hang_wait or args.duration, args.legit_requests,
                      progress)
    idle_text = ""
    try:
        for attack in ATTACKS:
            if attack.key in wanted:
                for server in servers:
                    harness.attack(attack, server)
        if "hang" in wanted:
            for server in servers:
                harness.hang(server)
        if "killed" in wanted:
            for server in servers:
                harness.killed(server)
        if "idle" in wanted:
            idle_text = idle_rows(bench, servers, args.idle_connections, progress)
    except KeyboardInterrupt:
        progress("interrupted; stopping servers")
    finally:
        bench.procs.stop_all()
        origin.close()
        signal.signal(signal.SIGTERM, previous)
        if args.keep_tmp:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if harness.rows:
        print(render(harness.rows, machine, command, args.duration))
    if idle_text:
        print(("\n" if harness.rows else render([], machine, command, args.duration) + "\n") + idle_text)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "command": command,
                                         "rows": [asdict(r) for r in harness.rows]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
