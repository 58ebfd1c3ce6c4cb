"""Entry point of one member process: ``python -m propylon.lab._runner NAME ...``.

The process binds its member, writes one line ``READY <json endpoints>`` to stdout,
and serves until SIGTERM/SIGINT or until its stdin reaches end of file (the parent
lab went away, so a crashed test run leaves no member holding a port). If the member
cannot start, it writes ``FAILED <reason>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import stat
import sys
from pathlib import Path

from ._base import MemberConfig
from .certs import LabCerts
from .registry import member_class

log = logging.getLogger("propylon.lab")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="propylon.lab._runner")
    p.add_argument("name")
    p.add_argument("--certs", required=True)
    p.add_argument("--ports", default=None, help="comma-separated ports (0 = any free)")
    p.add_argument("--uds", default=None)
    return p.parse_args(argv)


async def _run(args: argparse.Namespace) -> int:
    ports = [int(p) for p in args.ports.split(",")] if args.ports else None
    member = member_class(args.name)(MemberConfig(LabCerts(Path(args.certs)), ports, args.uds))
    try:
        endpoints = await member.start()
    except Exception as exc:  # report any start failure to the parent, in one line
        sys.stdout.write(f"FAILED {type(exc).__name__}: {exc}\n")
        sys.stdout.flush()
        return 2
    sys.stdout.write("READY " + json.dumps([e.as_dict() for e in endpoints]) + "\n")
    sys.stdout.flush()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(_watch_parent(stop))
    await stop.wait()
    watcher.cancel()
    await member.close()
    return 0


async def _watch_parent(stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin closes: the parent that holds its other end is gone."""
    try:
        if not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
            return  # not started by a lab (a terminal, /dev/null): rely on signals
    except (OSError, ValueError, AttributeError):
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (OSError, ValueError):
        return  # stdin is not a pipe (started by hand): rely on signals
    while await reader.read(4096):
        pass
    stop.set()


def main(argv: list[str] | None = None) -> int:
    """Run one member until told to stop; return the process exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("PROPYLON_LAB_LOG_LEVEL", "WARNING"),
                        format=f"%(asctime)s {args.name} %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_run(args))
    return uvloop.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
