"""Command line of the lab: start Propylon City and print its endpoint map.

Run as ``python -m propylon.lab`` (or through :func:`main` from another CLI).

Options: ``--certs DIR`` (default /tmp/propylon-lab/certs), ``--only a,b,...``,
``--ports fixed|ephemeral``, ``--workers blue=4,green=4`` (HTTP members as several
processes, for benchmarks). Runs until SIGTERM or SIGINT, then stops every member.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .certs import DEFAULT_CERTS_DIR
from .process import Lab, LabStartError
from .registry import MEMBERS


def _format_map(lab: Lab) -> str:
    rows = [("member", "address", "what it does")]
    for name in lab.names:
        eps = lab.members[name].endpoints
        addr = ", ".join(e.path if e.path else f"{e.scheme}://{e.host}:{e.port}" for e in eps)
        rows.append((name, addr, MEMBERS[name].description))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(f"\nCA certificate: {lab.certs.ca_cert}   (curl --cacert ...)")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m propylon.lab") -> int:
    """Start the lab, print the map, wait for a stop signal; return the exit status.

    ``argv`` defaults to ``sys.argv[1:]``; ``prog`` is the name shown in ``--help``.
    """
    p = argparse.ArgumentParser(prog=prog, description="Start Propylon City, the loopback "
                                "lab upstreams, and print the endpoint map.")
    p.add_argument("--certs", default=str(DEFAULT_CERTS_DIR), help="certificate directory")
    p.add_argument("--only", default=None, help="comma-separated members (default: all)")
    p.add_argument("--ports", default="fixed", choices=("fixed", "ephemeral"))
    p.add_argument("--workers", default="", help="processes per HTTP member, e.g. blue=4,green=4")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level)
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    try:
        workers = {k.strip(): int(v) for k, _, v in
                   (item.partition("=") for item in args.workers.split(",") if item.strip())}
    except ValueError:
        sys.stderr.write(f"--workers wants NAME=N[,NAME=N...], not {args.workers!r}\n")
        return 2

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        lab = Lab(only=only, certs_dir=args.certs, ports=args.ports, workers=workers)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    try:
        lab.start()
    except LabStartError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    try:
        sys.stdout.write(_format_map(lab) + "\n\nPropylon City is up; Ctrl-C to stop.\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        lab.close()
    return 0
