"""``python -m bench``: compare Propylon with nginx on this machine, on loopback.

Checks the tools, starts the servers in a temporary directory, runs each scenario,
prints the report (and writes ``--json``), and stops every process it started, also on
Ctrl-C or SIGTERM. Exit status: 0 when every selected scenario was measured or
reported unavailable, 1 when one failed, 2 for a usage error or a missing tool.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from .machine import find_tools, machine_info, missing_tools_message
from .report import render, to_json
from .runner import BenchParams, ScenarioResult, Workbench
from .scenarios import SCENARIOS, select

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line options and their defaults."""
    defaults = BenchParams()
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure Propylon's forwarder against nginx (same backend, same load, "
                    "same run) with wrk and h2load, on 127.0.0.1 only.",
    )
    p.add_argument("--duration", type=float, default=defaults.duration,
                   help="seconds measured per scenario (default %(default)s)")
    p.add_argument("--warmup", type=float, default=defaults.warmup,
                   help="seconds of unmeasured load first; 0 skips it (default %(default)s)")
    p.add_argument("--connections", type=int, default=defaults.connections,
                   help="concurrent connections (default %(default)s)")
    p.add_argument("--threads", type=int, default=defaults.workers,
                   help="worker processes for every server: nginx worker_processes and "
                        "Propylon threads (default %(default)s)")
    p.add_argument("--loadgen-threads", type=int, default=defaults.loadgen_threads,
                   help="wrk/h2load threads (default %(default)s: one core for the load)")
    p.add_argument("--h2-streams", type=int, default=defaults.h2_streams,
                   help="concurrent streams per HTTP/2 connection (default %(default)s)")
    p.add_argument("--repeat", type=int, default=defaults.repeat,
                   help="measured runs per scenario; the report keeps the median by req/s "
                        "(default %(default)s)")
    p.add_argument("--only", action="append", metavar="NAME[,NAME]",
                   help=f"run only these scenarios (known: {', '.join(SCENARIOS)})")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="also write the results here")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--keep-tmp", action="store_true",
                   help="keep the temporary directory (configs, logs) for inspection")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def on_sigterm(signum: int, frame: object) -> None:
    # Unwind through the finally blocks so every child is stopped.
    raise SystemExit(128 + signum)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.name:<12} {s.group:<6} {s.role:<10} {s.loadgen:<7} {s.description}")
        return 0
    if min(args.duration, args.connections, args.threads, args.loadgen_threads, args.repeat,
           args.h2_streams) < 1 or args.warmup < 0:
        progress("--duration, --connections, --threads, --loadgen-threads, --repeat and "
                  "--h2-streams must be >= 1, --warmup >= 0")
        return 2
    if args.connections < args.loadgen_threads:
        progress("--connections must be at least --loadgen-threads (wrk needs one per thread)")
        return 2
    try:
        scenarios = select(args.only)
    except KeyError as exc:
        progress(str(exc.args[0]))
        return 2
    tools, missing = find_tools(t for s in scenarios for t in s.tools)
    if missing:
        progress(missing_tools_message(missing))
        return 2

    params = BenchParams(connections=args.connections, loadgen_threads=args.loadgen_threads,
                         workers=args.threads, duration=args.duration, warmup=args.warmup,
                         h2_streams=args.h2_streams, repeat=args.repeat)
    command = shlex.join(["python", "-m", "bench", *argv])
    machine = machine_info(tools)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="propylon-bench-"))
    bench = Workbench(root, params, tools)
    results: list[ScenarioResult] = []
    interrupted = False
    try:
        groups: dict[str, list] = {}
        for scenario in scenarios:
            groups.setdefault(scenario.group, []).append(scenario)
        for group in groups.values():
            for result in bench.run_group(group, progress):
                if result.status != "ok":
                    progress(f"  {result.name} {result.status}: "
                              f"{result.note.splitlines()[0] if result.note else ''}")
                results.append(result)
    except KeyboardInterrupt:
        progress("interrupted; stopping servers")
        interrupted = True
    finally:
        bench.procs.stop_all()
        signal.signal(signal.SIGTERM, previous)
        if args.keep_tmp:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    if interrupted and not results:
        return 130
    # On Ctrl-C the scenarios finished so far are still worth printing.
    print(render(results, command=command, machine=machine, params=params))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(results, command=command, machine=machine,
                                                params=params), indent=2) + "\n")
    if interrupted:
        return 130
    return 1 if any(r.status == "failed" for r in results) else 0
